"""state: the delivered set, its hash and redactions; backups pruned to the newest N."""

import hashlib
import os
import tempfile
import unittest

from tests.test_worker import rollout


class StateTest(unittest.TestCase):
    def test_delivered_keys_hash_and_redactions(self) -> None:
        run = rollout("--redact", "SECRET_KEY")
        run.set_delivered("# c\nDEBUG='False'\nSECRET_KEY='s3cret'\n", absent=("SECRET_KEY_FALLBACKS",))
        self.assertEqual(run.keys, ["DEBUG", "SECRET_KEY", "SECRET_KEY_FALLBACKS"])
        self.assertEqual(
            run.hash, hashlib.sha256(b"DEBUG=False\nSECRET_KEY=s3cret\nSECRET_KEY_FALLBACKS\n").hexdigest()
        )
        self.assertEqual(run.r.redact("key s3cret, debug False"), "key [redacted], debug False")

    def test_a_listed_key_is_hashed_with_its_value(self) -> None:
        run = rollout()
        run.set_delivered("SECRET_KEY='a'\nSECRET_KEY_FALLBACKS='b'\n", absent=("SECRET_KEY_FALLBACKS",))
        self.assertEqual(run.hash, hashlib.sha256(b"SECRET_KEY=a\nSECRET_KEY_FALLBACKS=b\n").hexdigest())

    def test_mode_owner_wanted(self) -> None:
        self.assertEqual(rollout().desired_mode_owner(), "600 root:root")
        self.assertEqual(rollout("--group", "pms").desired_mode_owner(), "640 root:pms")

    def test_prune_keeps_the_newest_and_leaves_temp_files(self) -> None:
        run = rollout("--backups", "2")
        with tempfile.TemporaryDirectory() as d:
            names = [
                "20260101T000000.1Z-a.env",
                "20260102T000000.1Z-b.env",
                "20260103T000000.1Z-c.env",
                ".x.env",
                "path",
            ]
            for n in names:
                with open(os.path.join(d, n), "w", encoding="ascii") as f:
                    f.write("x")
            run.prune_backups(d)
            self.assertEqual(
                sorted(os.listdir(d)), [".x.env", "20260102T000000.1Z-b.env", "20260103T000000.1Z-c.env", "path"]
            )


if __name__ == "__main__":
    unittest.main()
