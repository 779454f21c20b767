"""The one base class of bad input: each command reports an ``InputError`` as one ``error: …`` line."""


class InputError(ValueError):
    """Input that cannot be used: a missing dataset, a malformed file, an impossible option.

    The message is one line that names the culprit (the file, the option, the value) and the problem.
    """
