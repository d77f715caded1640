"""Topic configurations."""

from __future__ import annotations

from confluent_kafka.admin import ConfigResource, ResourceType

from kasten_bp.errors import KastenBpError
from kasten_bp.kafka import clients


def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    if not topics:
        return {}
    client = clients.admin(bootstrap)  # must outlive its futures
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    out: dict[str, dict[str, str]] = {}
    for resource, future in client.describe_configs(resources).items():
        try:
            entries = future.result()
        except Exception as exc:  # noqa: BLE001 - report which topic
            raise KastenBpError(f"describing configs of topic {resource.name}: {exc}") from None
        out[str(resource.name)] = {k: str(v.value) for k, v in entries.items()}
    return out
