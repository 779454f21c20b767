"""The one base class of bad input: each command reports an ``InputError`` as one ``error: …`` line."""


class InputError(ValueError):
    """Input that cannot be used: a missing dataset, a malformed file, an impossible option.

    The message is one line that names the culprit (the file, the option, the value) and the problem.
    """


class UsageError(InputError):
    """An option value that cannot be used (an unknown algorithm, budgets that do not fit the envs)."""


class ModelError(InputError):
    """A model file that does not exist, is not a saved SB3 model, or is not of the expected algorithm."""
