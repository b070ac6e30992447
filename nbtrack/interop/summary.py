"""What an import or export copied, found already there, and skipped (with the reason)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: the order kinds are listed in (others follow, as met)
ORDER = ("experiments", "runs", "params", "metric values", "tags", "dataset inputs",
         "artifact files", "models", "registered models", "model versions", "aliases")


@dataclass
class Summary:
    """Counts per kind of thing (experiments, runs, metric values...) and the skips."""

    direction: str
    source: str
    copied: Counter = field(default_factory=Counter)
    present: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # kind, what, why
    notes: list[str] = field(default_factory=list)

    def copy(self, kind: str, count: int = 1) -> None:
        """Count ``count`` things of ``kind`` copied."""
        self.copied[kind] += count

    def already(self, kind: str, count: int = 1) -> None:
        """Count ``count`` things of ``kind`` found already there (copied before)."""
        self.present[kind] += count

    def skip(self, kind: str, what: str, why: str) -> None:
        """Record one thing not copied, and why."""
        self.skipped.append((kind, what, why))

    def note(self, text: str) -> None:
        """Record something copied differently from the source, such as a renumbering."""
        self.notes.append(text)

    def __str__(self) -> str:
        met = {*self.copied, *self.present, *(s[0] for s in self.skipped)}
        kinds = [k for k in ORDER if k in met] + sorted(met - set(ORDER))
        lines = [f"{self.direction} {self.source}:"]
        width = max((len(k) for k in kinds), default=0)
        for kind in kinds:
            skipped = sum(1 for s in self.skipped if s[0] == kind)
            lines.append(f"  {kind:<{width}}  {self.copied[kind]:>7} copied, "
                         f"{self.present[kind]:>7} already there, {skipped:>4} skipped")
        if not kinds:
            lines.append("  nothing to copy")
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"  {n}" for n in self.notes)
        if self.skipped:
            lines.append("Skipped:")
            lines.extend(f"  {kind} {what}: {why}" for kind, what, why in self.skipped)
        return "\n".join(lines)
