"""budget: the worker's time budgets from the arguments (components/rollout-time.ts mirrors them)."""

import unittest

from pms_agent import budget, options

BASE = ["--host", "h", "--env-file", "/e/f", "--service", "a", "--service", "b", "--health-url", "http://x/"]


class BudgetTest(unittest.TestCase):
    def test_the_documented_example(self) -> None:
        o = options.parse_args([*BASE, "--check", "true"])
        self.assertEqual((budget.forward(o), budget.rollback(o), budget.worst_case(o)), (810, 395, 1310))
        o = options.parse_args([*BASE, "--check", "true", "--rotate-db-password"])
        self.assertEqual(budget.worst_case(o), 1620)


if __name__ == "__main__":
    unittest.main()
