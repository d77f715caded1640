"""What a restore is checked against: the live primary, or (the disaster day, the primary
gone) what the backup recorded at its cut. `auto` asks the primary first, bounded."""

from __future__ import annotations

from collections.abc import Callable

from kasten_bp.consistency.core.report import PrimaryReach
from kasten_bp.errors import KastenBpError, UsageError
from kasten_bp.kafka import admin

AGAINST = ("auto", "primary", "manifest")


def check_against(against: str) -> str:
    if against not in AGAINST:
        raise UsageError(f"--against must be one of {', '.join(AGAINST)}, not {against!r}")
    return against


def primary_reach(primary: str, timeout: float) -> PrimaryReach:
    """Whether the primary answers a metadata request within `timeout` seconds."""
    try:
        admin.topics(primary, timeout=timeout)
    except KastenBpError as exc:
        return PrimaryReach(reachable=False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure to answer is "not reachable"
        return PrimaryReach(reachable=False, error=f"{type(exc).__name__}: {exc}")
    return PrimaryReach(reachable=True)


def resolve(
    against: str, primary: str, timeout: float, say: Callable[[str], None]
) -> tuple[str, PrimaryReach | None]:
    """ "primary" or "manifest", and what was learnt of the primary (None: not asked).
    `--against primary` with the primary out of reach is a usage error: nothing changed."""
    check_against(against)
    if against == "manifest":
        return "manifest", None
    reach = primary_reach(primary, timeout)
    if reach.reachable:
        return "primary", reach
    if against == "primary":
        raise UsageError(
            f"--against primary: the primary {primary} cannot be reached: {reach.error}"
        )
    say(
        f"the primary {primary} did not answer within {timeout:.0f}s ({reach.error}): "
        "comparing with what the backup recorded at its cut (--against manifest)"
    )
    return "manifest", reach
