"""options: argv parsed by the one table, each rule a usage error naming the flag."""

import unittest

from pms_agent import options
from pms_agent.report import UsageError

BASE = ["--host", "web1", "--env-file", "/etc/pms-backend/.env.production", "--service", "pms-backend"]


def parse(*extra: str) -> options.Options:
    return options.parse_args([*BASE, *extra])


def refused(*extra: str) -> str:
    try:
        options.parse_args([*BASE, *extra])
    except UsageError as e:
        return str(e)
    raise AssertionError(f"accepted: {extra}")


class TableTest(unittest.TestCase):
    def test_every_row_is_well_formed_and_maps_to_an_option(self) -> None:
        fields = set(options.Options().__dict__)
        renamed = {"service": "services", "health_url": "health_urls"}
        table = options.load_table()
        self.assertEqual({renamed.get(n, n) for n in (options.attr_name(r["flag"]) for r in table)}, fields)
        for row in table:
            self.assertTrue(row["flag"].startswith("--"), row)
            self.assertIn(row["type"], ("int", "string", "bool", "enum", "list"), row)
            self.assertIn("default", row, row)
            self.assertTrue(row["doc"], row)
            name = options.attr_name(row["flag"])
            self.assertIn(renamed.get(name, name), fields, row)
            if row["type"] == "int":
                self.assertLessEqual(row["min"], row["default"])
                self.assertLessEqual(row["default"], row["max"])
            if row["type"] == "enum":
                self.assertIn(row["default"], row["values"])

    def test_defaults(self) -> None:
        o = parse()
        self.assertEqual(o.services, ["pms-backend"])
        self.assertEqual((o.backups, o.secret_key_fallbacks, o.stable_seconds, o.health_timeout), (3, 1, 5, 30))
        self.assertEqual(o.unmanaged_keys, "refuse")
        self.assertEqual(o.app_dir, "/etc/pms-backend")
        self.assertEqual((o.env_dir, o.env_name), ("/etc/pms-backend", ".env.production"))
        self.assertEqual(o.python, "/usr/bin/python3")

    def test_repeatable_and_suffix(self) -> None:
        o = parse("--service", "celery-pms.service", "--health-url", "http://a/", "--health-url", "http://b/")
        self.assertEqual(o.services, ["pms-backend", "celery-pms"])
        self.assertEqual(o.health_urls, ["http://a/", "http://b/"])
        self.assertTrue(o.is_health_service("pms-backend"))
        self.assertFalse(o.is_health_service("celery-pms"))

    def test_emergency_implies_purge(self) -> None:
        self.assertTrue(parse("--emergency").purge_old_copies)

    def test_ranges(self) -> None:
        self.assertEqual(refused("--backups", "0"), "--backups must be 1..20")
        self.assertEqual(refused("--backups", "21"), "--backups must be 1..20")
        self.assertEqual(refused("--stable-seconds", "x"), "--stable-seconds must be 1..300")
        self.assertEqual(refused("--stable-seconds", "0"), "--stable-seconds must be 1..300")
        self.assertEqual(refused("--secret-key-fallbacks", "6"), "--secret-key-fallbacks must be 0..5")
        self.assertEqual(refused("--health-timeout", "0"), "--health-timeout must be 1..600")
        self.assertEqual(parse("--stable-seconds", "300").stable_seconds, 300)

    def test_unknown_missing_and_enum(self) -> None:
        self.assertEqual(refused("--bogus"), "unknown argument --bogus")
        self.assertEqual(refused("--group"), "--group needs a value")
        self.assertEqual(refused("--unmanaged-keys", "maybe"), "--unmanaged-keys must be refuse, keep or drop")

    def test_required_and_paths(self) -> None:
        with self.assertRaisesRegex(UsageError, "--host is required"):
            options.parse_args(["--env-file", "/e/f", "--service", "a"])
        with self.assertRaisesRegex(UsageError, "at least one --service"):
            options.parse_args(["--host", "h", "--env-file", "/e/f"])
        for bad in ("/etc/x/", "/etc//x", "/etc/./x", "/etc/../x", "/etc/.."):
            with self.assertRaisesRegex(UsageError, "must be a plain absolute file path"):
                options.parse_args(["--host", "h", "--env-file", bad, "--service", "a"])
        with self.assertRaisesRegex(UsageError, "must be an absolute path"):
            options.parse_args(["--host", "h", "--env-file", "rel", "--service", "a"])
        self.assertIn("is not a unit name", refused("--service", "x@"))
        self.assertIn("is not a unit name", refused("--service", "-x"))

    def test_rules_between_options(self) -> None:
        self.assertIn("exclude each other", refused("--secret-key-accept", "--emergency"))
        self.assertIn("exclude each other", refused("--health-ca", "/ca", "--health-insecure"))
        self.assertIn("go together", refused("--login-url", "http://x/"))
        self.assertIn("is not a socket unit name", refused("--socket", "x.service"))
        self.assertEqual(refused("--db-follow", "web1"), "--db-follow needs --rotate-db-password")
        self.assertEqual(refused("--db-roles", "a,b"), "--db-roles needs --rotate-db-password")
        self.assertIn("two different plain role names", refused("--rotate-db-password", "--db-roles", "a,a"))
        self.assertIn("two different plain role names", refused("--rotate-db-password", "--db-roles", "a,B"))
        self.assertEqual(parse("--rotate-db-password", "--db-roles", "a,b").db_roles, ["a", "b"])
        self.assertEqual(refused("--python", "python3"), "--python must be an absolute path")

    def test_json_round_trip_for_the_worker(self) -> None:
        o = parse("--check", "sh -c 'x'", "--redact", "SECRET_KEY")
        self.assertEqual(options.Options.from_json(o.to_json()), o)

    def test_host_of(self) -> None:
        self.assertEqual(options.host_of(["--x", "--host", "web9"]), "web9")
        self.assertEqual(options.host_of(["--host"]), "")


if __name__ == "__main__":
    unittest.main()
