"""User errors: bad config values and unusable data. Reported as one paragraph, never a traceback."""

import sys
from typing import NoReturn

USER_ERROR_EXIT = 2


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
