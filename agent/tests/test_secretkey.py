"""secretkey: SECRET_KEY_FALLBACKS composed on the host, emergency, phase 1 (accept)."""

import unittest
from typing import Optional

from pms_agent import secretkey

FINAL = "DEBUG='False'\nSECRET_KEY='new'\n"


def compose(
    previous: Optional[str],
    limit: int = 1,
    emergency: bool = False,
    accept: bool = False,
    running: Optional[str] = None,
) -> secretkey.Fallbacks:
    return secretkey.compose(FINAL, previous, "new", limit, emergency, accept, "/e/.env", lambda: running)


class FallbacksTest(unittest.TestCase):
    def test_rotation_keeps_the_previous_key_first(self) -> None:
        r = compose("SECRET_KEY='old'\nSECRET_KEY_FALLBACKS='older,oldest'\n", limit=2)
        self.assertEqual(r.final, "DEBUG='False'\nSECRET_KEY='new'\nSECRET_KEY_FALLBACKS='old,older'\n")
        self.assertTrue(r.changed)
        self.assertIn("changes; the host's previous key is kept as a fallback (2 kept, at most 2)", r.logs[-1])
        self.assertIn("oldest", r.redactions)

    def test_rerun_computes_the_same_list(self) -> None:
        r = compose("SECRET_KEY='new'\nSECRET_KEY_FALLBACKS='old'\n")
        self.assertEqual(r.final, FINAL.replace("'new'\n", "'new'\nSECRET_KEY_FALLBACKS='old'\n"))
        self.assertFalse(r.changed)
        self.assertEqual(r.logs, ["secret key: unchanged; 1 fallback(s) kept (at most 1)"])

    def test_zero_retires_all(self) -> None:
        self.assertEqual(compose("SECRET_KEY='old'\n", limit=0).final, FINAL)

    def test_emergency_keeps_none(self) -> None:
        r = compose("SECRET_KEY='old'\nSECRET_KEY_FALLBACKS='older'\n", limit=3, emergency=True)
        self.assertEqual(r.final, FINAL)
        self.assertTrue(r.changed)
        self.assertIn("EMERGENCY", r.logs[-1])

    def test_adoption_from_the_running_app(self) -> None:
        r = compose(None, running="from$app")
        self.assertIn("SECRET_KEY_FALLBACKS='from$app'", r.final)
        r = compose("SECRET_KEY=a$b\n", running="a$b")
        self.assertIn("SECRET_KEY_FALLBACKS='a$b'", r.final)

    def test_unreadable_value_and_no_running_app_is_logged_not_kept(self) -> None:
        r = compose("SECRET_KEY=a$b\n")
        self.assertEqual(r.final, FINAL)
        self.assertIn("cannot be read exactly", r.logs[0])

    def test_accept_keeps_signing_with_the_current_key(self) -> None:
        r = compose("SECRET_KEY='old'\n", accept=True)
        self.assertEqual(r.final, "DEBUG='False'\nSECRET_KEY='old'\nSECRET_KEY_FALLBACKS='new'\n")
        self.assertIn("accept (phase 1 of 2)", r.logs[-1])
        self.assertFalse(r.changed)
        # Phase 2 swaps them: the accepted key signs, the old one is the fallback.
        r2 = compose(r.final)
        self.assertEqual(r2.final, "DEBUG='False'\nSECRET_KEY='new'\nSECRET_KEY_FALLBACKS='old'\n")

    def test_accept_without_a_current_key_changes_nothing(self) -> None:
        r = compose(None, accept=True)
        self.assertTrue(r.nothing_to_accept)
        self.assertIn("nothing changed, phase 2 installs the env", r.logs[0])


if __name__ == "__main__":
    unittest.main()
