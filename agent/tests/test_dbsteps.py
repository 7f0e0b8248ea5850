"""dbsteps: alternating login roles decided from the host's file (no PostgreSQL needed)."""

import unittest

from tests.test_worker import rollout

FINAL = "DB_HOST='127.0.0.1'\nDB_PASSWORD='new'\nSECRET_KEY='k'\n"


def compose(previous: str) -> tuple:  # type: ignore[type-arg]
    run = rollout("--rotate-db-password", "--db-roles", "pms_app_a,pms_app_b")
    run.previous = previous
    run.final = FINAL
    run.delivered = {"DB_HOST": "127.0.0.1", "DB_PASSWORD": "new", "SECRET_KEY": "k"}
    run.compose_db_user()
    return run.final, run.db_switch, run.db_prev_role


class RolesTest(unittest.TestCase):
    def test_unchanged_password_stays_on_the_role(self) -> None:
        final, switch, _ = compose("DB_USER=pms_app_b\nDB_PASSWORD=new\n")
        self.assertIn("DB_PASSWORD='new'\nDB_USER='pms_app_b'\n", final)
        self.assertFalse(switch)

    def test_a_changed_password_goes_to_the_role_not_in_use(self) -> None:
        final, switch, prev = compose("DB_USER=pms_app_a\nDB_PASSWORD=old\n")
        self.assertIn("DB_USER='pms_app_b'", final)
        self.assertEqual((switch, prev), (True, "pms_app_a"))

    def test_from_a_single_role_to_the_first(self) -> None:
        final, switch, prev = compose("DB_USER=pms\nDB_PASSWORD=old\n")
        self.assertIn("DB_USER='pms_app_a'", final)
        self.assertEqual((switch, prev), (True, ""))

    def test_no_db_password_delivered_is_refused(self) -> None:
        run = rollout("--rotate-db-password", "--db-roles", "pms_app_a,pms_app_b")
        run.final, run.delivered = "SECRET_KEY='k'\n", {"SECRET_KEY": "k"}
        with self.assertRaisesRegex(Exception, "needs DB_PASSWORD in the delivered env file"):
            run.compose_db_user()

    def test_delivered_db_user_is_the_hosts_to_write(self) -> None:
        run = rollout("--rotate-db-password", "--db-roles", "pms_app_a,pms_app_b")
        run.delivered = {"DB_USER": "x", "SECRET_KEY": "k"}
        with self.assertRaisesRegex(Exception, "with --db-roles the host writes it"):
            run.claim_keys()


if __name__ == "__main__":
    unittest.main()
