"""Named errors. Each says what is wrong in words a user can act on, and never holds a secret."""


class BridgeError(Exception):
    """Base of every error the CLI prints as `error: ...` with exit code 1."""


class InputError(BridgeError):
    """Bad input: nothing was changed."""


class NotFound(BridgeError):
    """A named thing (employee, account, alias, message) does not exist."""


class InUse(InputError):
    """A removal refused: something still uses the thing, and the message names it."""


class ConfigError(BridgeError):
    """The set-up is incomplete: a setting, key or account is missing."""


class FieldError(InputError):
    """Bad input in one named field: the CLI prints it like any InputError, a form shows it beside the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SIGN_IN_NEEDED = "OAuth sign-in needed"  # how the Mail Log's reason of a message waiting for it begins


class NeedsSignIn(BridgeError):
    """An OAuth grant is missing, revoked or expired: only a person signing in again helps."""
