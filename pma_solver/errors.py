"""Exceptions that carry enough context for a one-line user message."""
from __future__ import annotations


class CaseError(Exception):
    """Bad user input: reported as one line naming file, table and key; exit code 2."""

    def __init__(self, message: str, *, file: str | None = None, table: str | None = None,
                 key: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.table = table
        self.key = key

    def located(self, file: str | None = None) -> "CaseError":
        """Return a copy with `file` filled in when it was not known where raised."""
        return CaseError(self.message, file=self.file or file, table=self.table, key=self.key)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        loc = ".".join(p for p in (self.table, self.key) if p)
        if loc:
            where.append(f"[{loc}]" if self.table and not self.key else loc)
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class NumericalFailure(Exception):
    """The discrete flow broke down (NaN, loss of convexity, collapsed dt); exit code 1."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class StorageFailure(NumericalFailure):
    """The run file cannot take more data (disk full, I/O error); exit code 1."""
