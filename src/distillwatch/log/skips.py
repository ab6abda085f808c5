"""``--skip-invalid`` bookkeeping: invalid records are counted and reported, never lost silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from distillwatch.errors import LogFormatError


@dataclass
class SkipReport:
    """Counts of skipped records by reason, with the first few errors verbatim."""

    keep_examples: int = 5
    total: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, error: LogFormatError) -> None:
        self.total += 1
        key = f"{error.field}: {error.reason}" if error.field else error.reason
        self.by_reason[key] += 1
        if len(self.examples) < self.keep_examples:
            self.examples.append(str(error))

    def summary(self) -> str:
        """One line: how many were skipped and the commonest reasons."""
        if not self.total:
            return "no invalid records"
        top = "; ".join(f"{n}× {reason}" for reason, n in self.by_reason.most_common(3))
        return f"skipped {self.total} invalid record(s): {top}"
