"""User errors: bad config values and unusable data. Reported as one paragraph, never a traceback."""

import errno
import sys
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


def disk_fault(err: BaseException) -> str | None:
    """What a disk fault ``err`` (or the OSError it was raised from) means in words; None for any other error."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.errno in DISK_FAULTS:
            return f"{DISK_FAULTS[err.errno]} ({err.strerror or errno.errorcode.get(err.errno)})"
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def fault_file(err: BaseException) -> str | None:
    """The file a disk fault happened on, when the error names it."""
    seen = 0
    while err is not None and seen < 5:
        if isinstance(err, OSError) and err.filename:
            return str(err.filename)
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def exit_on_fault(message: object) -> NoReturn:
    """Report a fault of the machine (a full disk) as one paragraph and leave with exit code 1 (no traceback)."""
    print_user_error(message)
    sys.exit(FAULT_EXIT)
