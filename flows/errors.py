"""What the ledger refuses, with messages a rep or finance lead can act on."""
from __future__ import annotations


class LedgerError(Exception):
    """Base of every refusal the domain raises on purpose."""


class NotFound(LedgerError):
    def __init__(self, what: str, ref: object) -> None:
        super().__init__(f"{what} {ref} does not exist")
        self.what, self.ref = what, ref


class InvalidInput(LedgerError):
    """The request itself is wrong; nothing was changed."""


class IllegalTransition(LedgerError):
    def __init__(self, step: str, stage: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"cannot {step.replace('_', ' ')} a deal in stage '{stage}' "
            f"(allowed from: {', '.join(allowed)})"
        )
        self.step, self.stage, self.allowed = step, stage, allowed


class CurrencyMismatch(LedgerError):
    pass


class CatalogError(LedgerError):
    """Every problem found in a catalog file, so the author can fix them in one pass."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source, self.problems = source, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"catalog {source} has {len(problems)} problem(s); nothing was loaded:\n{lines}")
