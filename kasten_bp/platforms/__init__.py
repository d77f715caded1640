"""Platforms: where the mirror runs. `build_platform` picks one from the config."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kasten_bp.config import Config
    from kasten_bp.platforms.base import Platform


def build_platform(config: Config) -> Platform:
    if config.platform == "local":
        from kasten_bp.platforms.local import LocalPlatform

        return LocalPlatform(config)
    if config.platform == "strimzi":
        from kasten_bp.platforms.strimzi import StrimziPlatform

        return StrimziPlatform(config)
    from kasten_bp.platforms.statefulset import StatefulSetPlatform

    return StatefulSetPlatform(config)
