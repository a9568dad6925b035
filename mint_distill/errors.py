"""Errors a user can act on. The CLI prints them without a traceback and exits with 2."""


class MintError(Exception):
    """Base class for user-facing errors (bad recipe, missing data or model, busy run folder)."""


class RecipeError(MintError):
    """The recipe file or an override is invalid."""


class DataError(MintError):
    """Input data is missing or malformed."""


class ModelUnavailableError(MintError):
    """A model reference cannot be resolved to weights on this machine."""


class CannotRunError(MintError):
    """Checks found problems that would stop a run (`mint-distill validate`, or a run before it starts)."""

    def __init__(self, problems: list[str]):
        super().__init__("this recipe cannot run here yet:\n" + "\n".join(f"  - {problem}" for problem in problems))
        self.problems = problems


class RunLockedError(MintError):
    """Another process holds the run folder."""


class IntegrityError(MintError):
    """A file does not have the content it was recorded with."""
