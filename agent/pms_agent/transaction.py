"""The transaction: every change step pushes its undo; a rollback attempts every undo, newest
first, and reports each failure (never stops at the first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional


@dataclass
class Undo:
    """One change's undo: run() returns None when it worked, else what is wrong, for the FAILED line."""

    name: str
    run: Callable[[], Optional[str]]


@dataclass
class Transaction:
    undos: List[Undo] = field(default_factory=list)
    rolled_back: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.undos)

    def push(self, name: str, run: Callable[[], Optional[str]]) -> None:
        self.undos.append(Undo(name, run))

    def forget(self) -> None:
        """The changes stay (nothing to undo from here: e.g. after an emergency's point of no return)."""
        self.undos.clear()

    def rollback(self) -> List[str]:
        """Runs every undo, newest first; an undo that raises is a problem too, and the next runs anyway."""
        problems: List[str] = []
        while self.undos:
            undo = self.undos.pop()
            try:
                problem = undo.run()
            except Exception as e:  # noqa: BLE001 - every undo is attempted whatever the one before did
                problem = f"{undo.name}: {type(e).__name__}: {e}"
            if problem:
                problems.append(problem)
        self.rolled_back = True
        return problems
