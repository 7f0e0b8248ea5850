"""envfile: the received file checked whole, hand-written lines read as systemd reads them, compose."""

import hashlib
import unittest
from typing import ClassVar, Dict

from pms_agent import envfile
from pms_agent.report import Failure

ENV = "# Managed by pms-secrets.\nDEBUG='False'\nSECRET_KEY='k1'\n"


def marked(text: str) -> bytes:
    data = text.encode()
    return data + f"# pms-secrets-end sha256={hashlib.sha256(data).hexdigest()}\n".encode()


def failure(fn: object, *args: object) -> Failure:
    try:
        fn(*args)  # type: ignore[operator]
    except Failure as e:
        return e
    raise AssertionError("no failure")


class ReceivedTest(unittest.TestCase):
    def test_whole_file_with_marker(self) -> None:
        self.assertEqual(envfile.check_received(marked(ENV)), ENV.encode())

    def test_refusals(self) -> None:
        self.assertIn("empty", failure(envfile.check_received, b"").detail)
        self.assertIn("does not end with a newline", failure(envfile.check_received, marked(ENV)[:-1]).detail)
        # Cut at a line end: the marker is missing.
        self.assertIn("without its end marker", failure(envfile.check_received, ENV.encode()).detail)
        damaged = marked(ENV).replace(b"k1", b"k2")
        self.assertIn("does not match its end marker", failure(envfile.check_received, damaged).detail)
        self.assertIn("not KEY='value'", failure(envfile.check_received, marked(ENV + "X=unquoted\n")).detail)
        self.assertIn("no SECRET_KEY", failure(envfile.check_received, marked("DEBUG='False'\n")).detail)
        self.assertEqual(failure(envfile.check_received, b"").check, "env-file")


class HandWrittenTest(unittest.TestCase):
    def test_line_key_as_systemd_reads_it(self) -> None:
        cases = {
            "  KEY=v": "KEY",
            "export KEY=v": "KEY",
            "KEY =v": "KEY",
            "# KEY=v": "",
            "; KEY=v": "",
            "": "",
            "NOEQUALS": "",
            "1KEY=v": "",
            "A-B=v": "",
        }
        for line, key in cases.items():
            self.assertEqual(envfile.line_key(line), key, line)

    def test_line_value_only_when_every_parser_agrees(self) -> None:
        cases = {
            "K=plain": "plain",
            "K = 'quoted value' ": "quoted value",
            'K="dq"': "dq",
            "K=two words": None,
            "K=a$b": None,
            "K='it''s'": None,
            "K=back\\slash": None,
            "K=`x`": None,
            "K='mismatch\"": None,
            "K=": "",
        }
        for line, value in cases.items():
            self.assertEqual(envfile.line_value(line), value, line)

    def test_host_value_last_wins(self) -> None:
        self.assertEqual(envfile.host_value("A=1\nexport A=2\nB=3", "A"), "2")
        self.assertEqual(envfile.host_value("A='x y'\nA=a b", "A"), "")


class ComposeTest(unittest.TestCase):
    delivered: ClassVar[Dict[str, str]] = {"DEBUG": "False", "SECRET_KEY": "k1", "SECRET_KEY_FALLBACKS": ""}

    def compose(self, previous: str, policy: str) -> tuple:  # type: ignore[type-arg]
        return envfile.compose(ENV, previous, self.delivered, ["SECRET_KEY"], policy, "/e/.env")

    def test_first_deploy(self) -> None:
        self.assertEqual(envfile.compose(ENV, None, self.delivered, [], "refuse", "/e/.env"), (ENV, [], [], []))

    def test_refuse_names_the_keys_and_the_fix(self) -> None:
        with self.assertRaises(Failure) as cm:
            self.compose("SECRET_KEY=old\nSENTRY_DSN=https://x\nOTHER=1\n", "refuse")
        self.assertEqual(cm.exception.check, "unmanaged-keys")
        self.assertIn("SENTRY_DSN, OTHER", cm.exception.detail)
        self.assertIn("app.unmanagedKeys", cm.exception.detail)

    def test_keep_carries_values_in_our_form_and_redacts_them(self) -> None:
        final, keys, redactions, _ = self.compose('export OTHER="v1"\nSECRET_KEY=old\nSECRET_KEY_FALLBACKS=f\n', "keep")
        self.assertEqual(keys, ["OTHER"])
        self.assertTrue(final.startswith(ENV))
        self.assertTrue(final.endswith("OTHER='v1'\n"))
        self.assertIn("v1", redactions)
        self.assertIn("old", redactions)  # a --redact key's previous value

    def test_drop_leaves_them_out(self) -> None:
        final, keys, _, logs = self.compose("OTHER=v1\n", "drop")
        self.assertEqual((final, keys), (ENV, ["OTHER"]))
        self.assertIn("unmanagedKeys=drop", logs[0])

    def test_a_value_that_cannot_be_carried_exactly_is_refused(self) -> None:
        with self.assertRaises(Failure) as cm:
            self.compose("OTHER=a$b\n", "keep")
        self.assertIn("OTHER in /e/.env has a value that cannot be carried over exactly", cm.exception.detail)
        self.assertNotIn("a$b", cm.exception.detail)


class HashTest(unittest.TestCase):
    def test_delivered_hash_sorted_in_c_order_and_absent_keys(self) -> None:
        values = {"b": "2", "B": "1", "SECRET_KEY_FALLBACKS": ""}
        want = hashlib.sha256(b"B=1\nSECRET_KEY_FALLBACKS\nb=2\n").hexdigest()
        self.assertEqual(envfile.delivered_hash(values, ["SECRET_KEY_FALLBACKS"]), want)

    def test_insert_after_and_replace(self) -> None:
        self.assertEqual(envfile.insert_after("A='1'\nB='2'\n", "A", "X='x'"), "A='1'\nX='x'\nB='2'\n")
        self.assertEqual(envfile.replace_value("A='1'\nB='2'\n", "B", "3"), "A='1'\nB='3'\n")
        self.assertEqual(envfile.parse_ours("# c\nA='1'\nB=''\n"), {"A": "1", "B": ""})


if __name__ == "__main__":
    unittest.main()
