"""MM2 control through the Kafka Connect REST API (the lab; Strimzi through a proxy)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kasten_bp.config import ConnectConfig
from kasten_bp.connect import STOPPED, ConnectClient, reached
from kasten_bp.errors import KastenBpError
from kasten_bp.waiting import wait_for

# Poll interval bounds (seconds) for the waits MM2 downtime is made of. A fixed 50 ms gave no
# gain in the bench and, in a wait that lasts (a loaded machine), hammers Connect.
_TIGHT = (0.05, 0.2)
T = TypeVar("T")


def _at_once(call: Callable[[T], object], items: list[T]) -> None:
    """One request per connector, all in flight together (this is MM2 downtime): Connect
    answers each only once its herder has written it, so one after another they queue up
    behind each other's rebalances. The first error is raised."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        list(pool.map(call, items))


class ConnectRestMirrorMaker:
    def __init__(self, connect: ConnectConfig) -> None:
        self.connect = connect
        self.url = connect.url
        self.connectors = connect.connectors

    def client(self, timeout: float = 15.0) -> ConnectClient:
        """A client of this Connect with the configured TLS and basic auth."""
        return ConnectClient.for_config(self.connect, timeout)

    def connector_states(self) -> dict[str, str]:
        with self.client() as client:
            return {name: client.state(name) for name in self.connectors}

    def stop(self, names: list[str], timeout: float) -> None:
        with self.client() as client:
            _at_once(client.stop, names)
            for name in names:

                def stopped(name: str = name) -> bool:
                    status = client.status(name)
                    return status["connector"]["state"] == STOPPED and not status.get("tasks")

                wait_for(f"connector {name} to be STOPPED", stopped, timeout, *_TIGHT)

    def restore(self, states: dict[str, str], timeout: float) -> None:
        with self.client() as client:
            _at_once(lambda item: client.restore_state(*item), list(states.items()))
            for name, state in states.items():

                def probe(name: str = name, state: str = state) -> bool:
                    return reached(name, client.status(name), state)  # one status a poll

                wait_for(f"connector {name} to be {state}", probe, timeout, *_TIGHT)

    def _source_connectors(self) -> list[str]:
        return [name for name in self.connectors if name.endswith("MirrorSourceConnector")]

    def source_offsets(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        with self.client() as client:
            for name in self._source_connectors():
                for entry in client.offsets(name):
                    out[_partition_of(name, entry)] = _offset_of(name, entry)
        return out

    def alter_source_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """Set MM2's committed source offsets of these partitions (connectors STOPPED). The
        partition maps are MM2's own, as Connect lists them, so nothing of MM2's offset
        format (the source alias among them) is assumed here."""
        left = dict(offsets)
        with self.client() as client:
            for name in self._source_connectors():
                entries = []
                for entry in client.offsets(name):
                    key = _partition_of(name, entry)
                    if key in left:
                        entries.append(
                            {**entry, "offset": {**entry["offset"], "offset": left.pop(key)}}
                        )
                if entries:
                    client.alter_offsets(name, entries)
        if left:
            names = ", ".join(f"{t}[{p}]" for t, p in sorted(left))
            raise KastenBpError(f"MM2 has no committed source offset for {names} to alter")


def _partition_of(name: str, entry: dict[str, Any]) -> tuple[str, int]:
    part = entry.get("partition") or {}
    try:
        return (str(part["topic"]), int(part["partition"]))
    except (KeyError, TypeError, ValueError):
        raise KastenBpError(f"connector {name}: unexpected offset entry {entry}") from None


def _offset_of(name: str, entry: dict[str, Any]) -> int:
    try:
        return int((entry.get("offset") or {})["offset"])
    except (KeyError, TypeError, ValueError):
        raise KastenBpError(f"connector {name}: unexpected offset entry {entry}") from None
