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


class MissingDependency(MetaplasticError):
    """An optional package that this command needs is not installed."""


def import_torchvision(purpose: str):
    """torchvision, imported for ``purpose``; it is optional (pip extra ``vision``): only the
    ``--download`` options and the CIFAR feature extraction need it (docs/INSTALL.md)."""
    try:
        import torchvision
    except ImportError as error:
        raise MissingDependency(
            f"{purpose} needs torchvision ({error}); install the torchvision release built for your "
            f"torch (requirements.txt, or pip install 'metaplastic-bnn[vision]'; for a CPU-only "
            f"torch, from the same index as torch: docs/INSTALL.md)") from None
    return torchvision
