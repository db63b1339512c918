"""The one exception type that means "the user asked for something invalid" (exit status 2)."""


class UserError(Exception):
    """Bad input: an unknown name, a malformed override, missing data. The CLI prints it on one
    line and exits with status 2, before anything in results/ is touched."""
