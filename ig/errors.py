"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class IGError(Exception):
    """A problem with the user's input (config, files, shapes) that names the fix.

    The message must be one line that says what is wrong and what to do about it.
    """
