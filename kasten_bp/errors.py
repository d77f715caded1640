"""Errors that carry the CLI exit code they map to (see the CLI contract in the README)."""

from __future__ import annotations


class KastenBpError(Exception):
    """Base class; `exit_code` is what the CLI exits with (3: failed, rolled back)."""

    exit_code = 3


class UsageError(KastenBpError):
    """Bad input or configuration; nothing was changed."""

    exit_code = 2


class LockBusy(UsageError):
    """Another run holds the run lock of this mirror; `holder` says who."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RollbackFailed(KastenBpError):
    """A run failed and rolling it back failed too: a person must act."""

    exit_code = 4


# Exit code 3, told apart by what the engine and the waits do with them.
class RunFailed(KastenBpError):
    """A run failed and was rolled back."""


class WaitTimeout(KastenBpError):
    """A bounded wait ran out; the message says what it waited for."""


class TemporaryError(KastenBpError):
    """May get better by waiting: a probe raises it to say "not yet, and here is why"."""


class Unreachable(TemporaryError):
    """A cluster, Connect worker, API server or S3 endpoint did not answer. Temporary to a
    wait (it may come back); at the command line, exit 2: a command that stops here has
    changed nothing (a run that had acted is rolled back and exits 3 instead)."""

    exit_code = 2


class PermanentError(KastenBpError):
    """Cannot get better by waiting (a process died, access denied): waits end at once."""


class LockLost(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """The run's lock (a Lease) could not be renewed in time: the run stops acting before
    another may take the lock, and leaves its journal to the next holder (its watchdog, or
    `kasten-bp resume`). A BaseException so that no `except Exception` turns it into a
    rollback: rolling back is acting too."""

    exit_code = 4
