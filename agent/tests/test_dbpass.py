"""dbpass: SCRAM-SHA-256 verifiers as PostgreSQL stores them, stored-form matching, pgpass escaping."""

import base64
import hashlib
import hmac
import os
import tempfile
import unittest

from pms_agent import dbpass


class ScramTest(unittest.TestCase):
    def test_rfc7677_test_vector_shape(self) -> None:
        # RFC 7677's example: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
        salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
        v = dbpass.scram_verifier(b"pencil", salt, 4096)
        salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
        server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.assertTrue(v.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"))
        self.assertTrue(v.endswith(":" + base64.b64encode(server).decode()))
        # The RFC's ServerSignature derives from this ServerKey (checked through the stored key form).
        self.assertTrue(dbpass.stored_matches(v, "pms", b"pencil"))

    def test_stored_matches_scram_and_md5(self) -> None:
        v = dbpass.scram_verifier(b"new-password")
        self.assertTrue(dbpass.stored_matches(v, "pms", b"new-password"))
        self.assertFalse(dbpass.stored_matches(v, "pms", b"old-password"))
        md5 = "md5" + hashlib.md5(b"pw" + b"pms").hexdigest()
        self.assertTrue(dbpass.stored_matches(md5, "pms", b"pw"))
        self.assertFalse(dbpass.stored_matches(md5, "other", b"pw"))
        for junk in ("", "SCRAM-SHA-256$x", "SCRAM-SHA-256$4096:!!$a:b", "plain"):
            self.assertFalse(dbpass.stored_matches(junk, "pms", b"pw"), junk)

    def test_random_verifiers_differ(self) -> None:
        self.assertNotEqual(dbpass.random_verifier(), dbpass.random_verifier())

    def test_pgpass_escape_and_root_only_file(self) -> None:
        self.assertEqual(dbpass.pgpass_escape("a:b\\c"), "a\\:b\\\\c")
        with tempfile.TemporaryDirectory() as d:
            path = dbpass.Db(d).write_pgpass("x.pgpass", "p:w")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(f.read(), "*:*:*:*:p\\:w\n")

    def test_ports_and_roles(self) -> None:
        self.assertTrue(dbpass.port_ok("5432"))
        self.assertTrue(dbpass.port_ok("65535"))
        for bad in ("0", "65536", "x", "", "123456"):
            self.assertFalse(dbpass.port_ok(bad), bad)
        self.assertIsNone(dbpass.ROLE.fullmatch("Pms"))
        self.assertEqual(
            dbpass.Db("/nonexistent").stored("x; DROP"), (1, "'x; DROP' is not a plain lower-case role name")
        )

    def test_trust_refusal_names_the_fix(self) -> None:
        text = dbpass.trust_refusal("127.0.0.1", "5432", "pms", "on this host")
        self.assertIn("scram-sha-256", text)
        self.assertIn("pg_reload_conf", text)


if __name__ == "__main__":
    unittest.main()
