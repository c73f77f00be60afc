"""The data model of an evaluation input: one :class:`Item` per file the user gave, in a :class:`Dataset`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

__all__ = ["STATUSES", "Item", "Dataset", "with_status"]

STATUSES = ("ok", "unlabelled", "skipped", "error", "cancelled")


@dataclass(frozen=True)
class Item:
    """One input file (or CSV row) and what will happen to it."""

    path: str                  # sanitised relative path, '/'-separated (a label, never opened as a path)
    label: int | None          # 1 = fake, 0 = real, None = unlabelled
    group: str = ""            # generator / subset folder(s), "" when none
    status: str = "ok"         # ok | unlabelled | skipped | error (see STATUSES)
    reason: str = ""           # why it is not ok
    ref: str | None = None     # what the dataset's reader needs to fetch the bytes (None: no data)
    size: int = 0              # bytes (declared size for zip members)


@dataclass(frozen=True)
class Dataset:
    """A labelled set of inputs. ``read(item)`` returns an item's bytes (raises OSError/ValueError on failure)."""

    name: str                                              # shown to the user
    kind: str                                              # folder | zip | uploads | csv | examples | predictions
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()                            # sentences about the input as a whole
    reader: Callable[[str], bytes] | None = field(default=None, repr=False, compare=False)
    closer: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def read(self, item: Item) -> bytes:
        """The bytes of one item."""
        if self.reader is None or item.ref is None:
            raise ValueError("no image data for this row")
        return self.reader(item.ref)

    def close(self) -> None:
        """Release open files (a zip on disk). Safe to call twice."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counts(self) -> dict[str, int]:
        """Number of items per status, plus ``real`` / ``fake`` among the ok ones."""
        out = {s: 0 for s in STATUSES}
        for it in self.items:
            out[it.status] = out.get(it.status, 0) + 1
        ok = [it for it in self.items if it.status == "ok"]
        out["real"] = sum(it.label == 0 for it in ok)
        out["fake"] = sum(it.label == 1 for it in ok)
        return out

    def summary(self) -> str:
        """One sentence: how many files, how many will be scored, and why the others will not."""
        c = self.counts()
        parts = [f"{len(self.items)} file(s) in {self.name}: {c['ok']} to score ({c['real']} real, "
                 f"{c['fake']} fake)"]
        for s in ("unlabelled", "skipped", "error"):
            if c[s]:
                parts.append(f"{c[s]} {s}")
        return ", ".join(parts) + "."


def with_status(item: Item, status: str, reason: str) -> Item:
    """A copy of ``item`` with a new status and reason."""
    return replace(item, status=status, reason=reason)
