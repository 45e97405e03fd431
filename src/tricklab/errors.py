"""User errors: bad config values and unusable data. Reported as one paragraph, never a traceback."""

import errno
import sys
from collections.abc import Iterator
from typing import NoReturn

USER_ERROR_EXIT = 2
FAULT_EXIT = 1  # what the machine did (a full disk), not what the command asked
# OSErrors that say the disk cannot take what is written (the run's code is not at fault), and how to say so.
DISK_FAULTS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the file system is read-only", errno.EIO: "the disk reported an I/O error",
               errno.EFBIG: "the file grew past the file system's limit"}


class TricklabError(Exception):
    """A problem the user can fix; its message says what was wrong and what is allowed."""


class ConfigError(TricklabError):
    """A config value that is missing, of the wrong type or out of range."""


class DataError(TricklabError):
    """A dataset that is missing, corrupt or unreadable."""


def print_user_error(message: object) -> None:
    """``tricklab: error: <message>`` on stderr: the one form every user error takes."""
    print(f"tricklab: error: {message}", file=sys.stderr)


def exit_on_user_error(message: object) -> NoReturn:
    """Report a user error and leave with exit code 2 (no traceback)."""
    print_user_error(message)
    sys.exit(USER_ERROR_EXIT)


def _os_errors(err: BaseException | None, depth: int = 5) -> Iterator[OSError]:
    """The OSErrors among ``err`` and the errors it was raised from (``__cause__``, else ``__context__``), the
    first ``depth`` of that chain."""
    for _ in range(depth):
        if err is None:
            return
        if isinstance(err, OSError):
            yield err
        err = err.__cause__ or err.__context__


def disk_fault(err: BaseException) -> str | None:
    """What a disk fault ``err`` (or the OSError it was raised from) means in words; None for any other error."""
    found = next((e for e in _os_errors(err) if e.errno in DISK_FAULTS), None)
    if found is None:
        return None
    return f"{DISK_FAULTS[found.errno]} ({found.strerror or errno.errorcode.get(found.errno)})"


def fault_file(err: BaseException) -> str | None:
    """The file a disk fault happened on, when the error names it."""
    return next((str(e.filename) for e in _os_errors(err) if e.filename), None)


def exit_on_fault(message: object) -> NoReturn:
    """Report a fault of the machine (a full disk) as one paragraph and leave with exit code 1 (no traceback)."""
    print_user_error(message)
    sys.exit(FAULT_EXIT)
