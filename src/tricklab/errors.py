"""User errors: bad config values and unusable data. Reported as one paragraph, never a traceback."""


class TricklabError(Exception):
    """A problem the user can fix; its message says what was wrong and what is allowed."""


class ConfigError(TricklabError):
    """A config value that is missing, of the wrong type or out of range."""


class DataError(TricklabError):
    """A dataset that is missing, corrupt or unreadable."""
