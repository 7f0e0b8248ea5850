"""transaction: every undo attempted newest first, each failure reported."""

import unittest
from typing import List, Optional

from pms_agent.transaction import Transaction


class TransactionTest(unittest.TestCase):
    def test_every_undo_runs_in_reverse_and_each_problem_is_reported(self) -> None:
        ran: List[str] = []
        tx = Transaction()
        self.assertFalse(tx.changed)

        def ok(name: str) -> Optional[str]:
            ran.append(name)
            return None

        def boom() -> Optional[str]:
            ran.append("boom")
            raise OSError("disk full")

        tx.push("db", lambda: ok("db"))

        def env() -> Optional[str]:
            ran.append("env")
            return "could not put the env back"

        tx.push("env", env)
        tx.push("drop-ins", boom)
        self.assertTrue(tx.changed)
        problems = tx.rollback()
        self.assertEqual(ran, ["boom", "env", "db"])
        self.assertEqual(problems, ["drop-ins: OSError: disk full", "could not put the env back"])
        self.assertTrue(tx.rolled_back)
        self.assertFalse(tx.changed)

    def test_forget_keeps_the_changes(self) -> None:
        tx = Transaction()
        tx.push("x", lambda: "never")
        tx.forget()
        self.assertEqual(tx.rollback(), [])


if __name__ == "__main__":
    unittest.main()
