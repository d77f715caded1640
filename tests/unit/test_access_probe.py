"""One-line causes from what librdkafka's error callback reports (texts as librdkafka 2.16
wrote them against the secured lab)."""

from __future__ import annotations

import pytest

from kasten_bp.kafka.access import ClientError, _listed, cause, clean, settings_cause

BROKER = "sasl_ssl://127.0.0.1:58211/bootstrap"
ALL_DOWN = ClientError("_ALL_BROKERS_DOWN", "1/1 brokers are down")
WRONG_PASSWORD = ClientError(
    "_AUTHENTICATION",
    f"{BROKER}: SASL authentication error: Authentication failed during authentication due "
    "to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 309ms in state AUTH_REQ)",
)
WRONG_MECHANISM = ClientError(
    "_AUTHENTICATION",
    f"{BROKER}: SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Unsupported SASL "
    "mechanism: broker's supported mechanisms: SCRAM-SHA-512 (after 301ms in state "
    "AUTH_HANDSHAKE)",
)
UNTRUSTED_CA = ClientError(
    "_SSL",
    f"{BROKER}: SSL handshake failed: error:0A000086:SSL routines::certificate verify "
    "failed: broker certificate could not be verified, verify that ssl.ca.location is "
    "correctly configured or root CA certificates are installed (install ca-certificates "
    "package) (after 2ms in state SSL_HANDSHAKE)",
)
UNTRUSTED_CA_TRANSPORT = ClientError(
    "_TRANSPORT",
    f"{BROKER}: error:0A000086:SSL routines::certificate verify failed (after 3ms in state "
    "SSL_HANDSHAKE)",
)
REFUSED = ClientError(
    "_TRANSPORT",
    "sasl_ssl://127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection "
    "refused (after 0ms in state CONNECT)",
)
UNRESOLVED = ClientError(
    "_RESOLVE",
    "sasl_ssl://nonexistent.invalid:9092/bootstrap: Failed to resolve "
    "'nonexistent.invalid:9092': Name or service not known (after 1ms in state CONNECT)",
)
CLOSED = ClientError(
    "_TRANSPORT",
    "ssl://127.0.0.1:58211/bootstrap: Disconnected: SSL connection closed by peer (after "
    "2ms in state UP)",
)


def test_clean_drops_the_broker_prefix_and_the_timing_suffix() -> None:
    assert clean(REFUSED.text) == "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    assert clean("  plain words  ") == "plain words"
    # A suffix that also counts suppressed repeats.
    assert (
        clean(f"{BROKER}: x (after 130ms in state AUTH_REQ, 1 identical error(s) suppressed)")
        == "x"
    )


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [WRONG_PASSWORD, ALL_DOWN, WRONG_PASSWORD],
            "SASL authentication failed for user kasten-bp (wrong password or unknown user)",
        ),
        (
            [WRONG_MECHANISM, ALL_DOWN],
            "SASL mechanism refused: SASL SCRAM-SHA-256 mechanism handshake failed: Broker: "
            "Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512",
        ),
        (
            [UNTRUSTED_CA, ALL_DOWN, UNTRUSTED_CA_TRANSPORT],
            "TLS handshake failed: certificate verify failed (is ssl.ca_file the cluster's CA?)",
        ),
        (
            [ALL_DOWN, UNTRUSTED_CA_TRANSPORT],  # seen only as a transport error
            "TLS handshake failed: certificate verify failed (is ssl.ca_file the cluster's CA?)",
        ),
        (
            [ClientError("_SSL", f"{BROKER}: SSL handshake failed: hostname mismatch")],
            "TLS handshake failed: SSL handshake failed: hostname mismatch",
        ),
        (
            [REFUSED, ALL_DOWN],
            "connection refused (is the bootstrap address right and the cluster running?)",
        ),
        (
            [UNRESOLVED, ALL_DOWN],
            "cannot resolve the bootstrap address: Failed to resolve "
            "'nonexistent.invalid:9092': Name or service not known",
        ),
        (
            [ALL_DOWN, CLOSED],
            "the broker closed the connection (does security_protocol match its listener?)",
        ),
        (
            [ClientError("_TIMED_OUT", f"{BROKER}: something else (after 5ms in state UP)")],
            "something else",
        ),
        (
            [ALL_DOWN],  # a TLS listener spoken to in plaintext says nothing more
            "no broker answered within 5s (is the bootstrap address right, and does "
            "security_protocol match the listener?)",
        ),
        (
            [],
            "no broker answered within 5s (is the bootstrap address right, and does "
            "security_protocol match the listener?)",
        ),
    ],
)
def test_cause_names_what_went_wrong_in_one_line(errors: list[ClientError], expected: str) -> None:
    found = cause(errors, "kasten-bp", 5.0)
    assert found == expected
    assert "\n" not in found


def test_an_authentication_failure_wins_over_the_transport_noise_around_it() -> None:
    assert cause([ALL_DOWN, REFUSED, WRONG_PASSWORD], "kasten-bp", 5.0).startswith(
        "SASL authentication failed for user kasten-bp"
    )


def test_without_a_sasl_user_the_cause_names_none() -> None:
    assert cause([WRONG_PASSWORD], None, 5.0) == (
        "SASL authentication failed (wrong password or unknown user)"
    )


def test_long_topic_lists_are_cut_to_keep_the_line_short() -> None:
    assert _listed(["a", "b"]) == "a, b"
    assert _listed([f"t{i}" for i in range(8)]) == "t0, t1, t2, t3, t4 and 3 more"


def test_settings_librdkafka_refuses_at_creation_get_one_line() -> None:
    wrong_key_password = (
        "Failed to create admin client: ssl.key.location failed: "
        "error:0A080009:SSL routines::PEM lib"
    )
    assert settings_cause(wrong_key_password) == (
        "cannot load the TLS client key (wrong key password, or not a PEM key?)"
    )
    assert settings_cause("Failed to create admin client: ssl.ca.location failed: x") == (
        "client settings refused: ssl.ca.location failed: x"
    )
