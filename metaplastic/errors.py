"""User-facing error types.

A :class:`MetaplasticError` is an expected failure (missing data, bad configuration) whose
message alone tells the user what to do; command-line entry points print it on stderr and
exit with status 2, without a traceback.
"""


class MetaplasticError(Exception):
    """Base class of the errors the command line reports as a plain message (exit status 2)."""


class DataError(MetaplasticError):
    """A dataset file is missing, malformed, or does not match its recorded SHA-256."""


class ConfigError(MetaplasticError):
    """An invalid option, argument or configuration value."""
