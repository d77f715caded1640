"""Which line of a broker's log says why its last run ended (kraft.exit_reason)."""

from __future__ import annotations

from pathlib import Path

from kasten_bp.lab.kraft import BrokerSpec, exit_reason

START = "[2026-12-02 23:05:14,869] INFO Registered signal handlers for TERM, INT, HUP (x.Y)"
EARLIER_RUN = [
    START,
    "[2026-12-02 22:00:00,000] ERROR Exiting Kafka due to an older failure. (kafka.Kafka$)",
]
BIND_FAILURE = [
    START,
    "[2026-12-02 23:28:10,645] ERROR Unable to start acceptor for PLAINTEXT (k.n.A)",
    "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:4: "
    "Address already in use.",
    "\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:700)",
    "[2026-12-02 23:28:10,654] ERROR [BrokerServer id=1] Received a fatal error while waiting "
    "for all of the SocketServer Acceptors to be started (kafka.server.BrokerServer)",
    "java.lang.RuntimeException: Unable to start acceptor for PLAINTEXT",
    "\tat kafka.network.Acceptor.start(SocketServer.scala:1)",
    "Caused by: org.apache.kafka.common.KafkaException: Socket server failed to bind to "
    "127.0.0.1:4: Address already in use.",
    "\t... 12 more",
    "Caused by: java.net.BindException: Address already in use",
    "[2026-12-02 23:28:10,657] ERROR [BrokerServer id=1] Fatal error during broker startup. "
    "Prepare to shutdown (kafka.server.BrokerServer)",
    "[2026-12-02 23:28:10,746] INFO App info kafka.server for 1 unregistered (x.Y)",
]
NOT_REGISTERED = [
    START,
    "[2026-12-02 23:06:07,406] ERROR [QuorumController id=2] Exceptionally slow controller "
    "event handleCommit[baseOffset=0] took 17808 ms. (o.a.k.c.EventPerformanceMonitor)",
    "[2026-12-02 23:06:47,989] ERROR [BrokerLifecycleManager id=2] Shutting down because we "
    "were unable to register with the controller quorum. (kafka.server.BrokerLifecycleManager)",
    "[2026-12-02 23:06:48,042] ERROR [BrokerServer id=2] Received a fatal error while waiting "
    "for the controller to acknowledge that we are caught up (kafka.server.BrokerServer)",
]


def broker_with_log(tmp_path: Path, lines: list[str]) -> BrokerSpec:
    (tmp_path / "server.log").write_text("\n".join(lines) + "\n")
    return BrokerSpec(id=1, port=1, controller_port=2, log_dir="-", run_dir=str(tmp_path))


def test_a_fatal_line_comes_with_the_messages_of_its_exception_chain(tmp_path: Path) -> None:
    broker = broker_with_log(tmp_path, EARLIER_RUN + BIND_FAILURE)
    assert exit_reason(broker) == (
        "[BrokerServer id=1] Received a fatal error while waiting for all of the SocketServer "
        "Acceptors to be started: Unable to start acceptor for PLAINTEXT: Socket server failed "
        "to bind to 127.0.0.1:4: Address already in use."
    )


def test_kafkas_own_reason_for_giving_up_is_named(tmp_path: Path) -> None:
    broker = broker_with_log(tmp_path, EARLIER_RUN + NOT_REGISTERED)
    assert exit_reason(broker) == (
        "[BrokerLifecycleManager id=2] Shutting down because we were unable to register with "
        "the controller quorum."
    )


def test_a_run_without_a_fatal_line_is_told_by_its_last_lines(tmp_path: Path) -> None:
    """The earlier run's fatal line is not this run's reason."""
    quiet = ["[2026-12-02 23:10:00,000] INFO Metrics reporters closed (x.Y)"]
    broker = broker_with_log(tmp_path, EARLIER_RUN + [START] + quiet)
    assert exit_reason(broker) == f"{START} | {quiet[0]}"


def test_no_log_at_all(tmp_path: Path) -> None:
    broker = BrokerSpec(id=1, port=1, controller_port=2, log_dir="-", run_dir=str(tmp_path))
    assert exit_reason(broker) == "(no log)"
