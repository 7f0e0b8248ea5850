/**
 * DB_PASSWORD rotation that proves itself (issue 19), script-driven like db-rotation.test.ts's
 * first part: the program's own rollout command (rolloutCommand + `--rotate-db-password`, and
 * `--db-roles` / `--emergency` as the program passes them) over real ssh with the program's stdin.
 *
 * Two hosts:
 *   - `dbtrust` boots with the `pg-trust` variant: pg_hba.conf trusts 127.0.0.1 as `initdb` writes
 *     it without -A, so every password logs in. "Already changed" is decided from the stored SCRAM
 *     verifier, not a login, and a rotation whose proof could not fail is refused before any
 *     change, naming host, check and the pg_hba.conf fix; after that fix as written, it rotates.
 *   - `dbgate` (scram-sha-256 as Debian ships it): a check command that connects to the database
 *     passes during a single-role rotation (it runs after the password change) and still gates it
 *     (a failing one rolls PostgreSQL back, one FAILED line); a refusal after the password change
 *     prints one true FAILED line; an emergency with alternating roles closes the role the app
 *     left (its password refused, its open session ended) and the next routine rotation still
 *     works.
 *
 *   node --import tsx --test test/host/db-proof.test.ts        (root, Linux)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { DB_ROLES, loginCode, roleVerifier, runbookRolesSql, superuserSql } from "./bench/db";
import { envFile, leaked, randomValue, rollout as rolloutAt, sh } from "./safety-host";
import { celeryRoundTrip, unavailable } from "./scenario";
import {
  APP,
  bootFleet,
  hostTestsUnavailableReason,
  PRESET_ENV_FILE,
  PUBLIC_HOST,
  TEST_DB,
  type TestFleet,
  type TestHost,
  verboseLog,
} from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
/** Where the `envfile` variant's units read their env, so every rollout here delivers to it. */
const ENV_FILE = PRESET_ENV_FILE;
const rollout: typeof rolloutAt = (fleet, host, env, opts = {}) =>
  rolloutAt(fleet, host, env, { ...opts, app: { envFile: ENV_FILE, ...opts.app } });
const ROTATE = ["--rotate-db-password"];
const ROLES = ["--rotate-db-password", "--db-roles", DB_ROLES.join(",")];
const newPassword = (): string => `${randomValue(36)}-_.+=,${randomValue(6)}`;
const failedLines = (text: string): string[] => text.split("\n").filter((l) => l.includes("pms-rollout FAILED"));
/** A check command that needs the database with the env's DB_USER and DB_PASSWORD (Django connects). */
const DB_CHECK = `cd ${APP.dir} && source venv/bin/activate && python manage.py migrate --check`;

describe("DB_PASSWORD rotation that proves itself", { skip }, () => {
  let fleet: TestFleet;
  let trust: TestHost;
  let gate: TestHost;

  const health = async (h: TestHost): Promise<number> =>
    (await fleet.http(h, "/health/", { host: PUBLIC_HOST })).status;
  /** The host file's KEY=value lines (ours, quoted, or the envfile variant's plain preset). */
  const hostEnv = async (h: TestHost): Promise<Record<string, string>> =>
    Object.fromEntries(
      (await sh(fleet, h, `cat ${ENV_FILE}`))
        .split("\n")
        .map((l) => /^([A-Za-z_][A-Za-z0-9_]*)=(['"]?)(.*)\2$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1], m[3]]),
    );

  before(async () => {
    fleet = await bootFleet(["dbtrust", "dbgate"], log, {
      variant: { dbtrust: ["envfile", "pg-trust"], dbgate: ["envfile"] },
      httpHost: "public",
    });
    [trust, gate] = fleet.hosts;
  });
  after(async () => {
    await fleet?.teardown();
  });

  describe("pg_hba.conf trusts loopback (initdb without -A)", () => {
    it("the variant: a password PostgreSQL never had logs in over TCP on loopback", async () => {
      assert.equal(await loginCode(fleet, trust, `never-set-${randomValue(12)}`), 0);
    });

    it("a rotation is refused before any change: the new password would 'log in' already, and so would a wrong one; host, check and the pg_hba.conf fix are named", async () => {
      const before = await sh(fleet, trust, `cat ${ENV_FILE}`);
      const verifier = await roleVerifier(fleet, trust, TEST_DB.user);
      const next = newPassword();
      const r = await rollout(fleet, trust, envFile({ DB_PASSWORD: next }).text, { extraArgs: ROTATE });
      assert.notEqual(r.code, 0, `a rotation whose proof cannot fail must not succeed:\n${r.stdout}${r.stderr}`);
      assert.doesNotMatch(r.stdout, /already accepts the new password/);
      assert.deepEqual(failedLines(r.stderr).length, 1, r.stderr);
      assert.match(
        r.stderr,
        /pms-rollout FAILED host=dbtrust service=- check=db-password: PostgreSQL at 127\.0\.0\.1:5432 let pms in with a deliberately wrong password \(pg_hba\.conf trusts this connection.*Fix: on this host, in pg_hba\.conf \(runuser -u postgres -- psql -At -c 'SHOW hba_file'\) set the method of the line matching host 127\.0\.0\.1 \/ user pms to scram-sha-256, then .*pg_reload_conf.*; nothing on the host was changed/,
      );
      assert.equal(await roleVerifier(fleet, trust, TEST_DB.user), verifier, "PostgreSQL untouched");
      assert.equal(await sh(fleet, trust, `cat ${ENV_FILE}`), before, "env file untouched");
      assert.equal(await health(trust), 200);
      assert.deepEqual(leaked(r.stdout + r.stderr, [next, TEST_DB.password]), []);
    });

    it("'already changed' is read from the stored verifier, not a login: a password an earlier host set is recognised without a change", async () => {
      const earlier = newPassword();
      // What an earlier host of the run did: pms has the new password, this host's file the old one.
      await superuserSql(
        fleet,
        trust,
        `SET log_statement = 'none';\nALTER ROLE ${TEST_DB.user} PASSWORD '${earlier}';\n`,
      );
      const verifier = await roleVerifier(fleet, trust, TEST_DB.user);
      const r = await rollout(fleet, trust, envFile({ DB_PASSWORD: earlier }).text, { extraArgs: ROTATE });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        /db password: pms@127\.0\.0\.1:5432 already accepts the new password \(its stored verifier matches it, checked without a login/,
      );
      assert.equal(await roleVerifier(fleet, trust, TEST_DB.user), verifier, "no ALTER ROLE");
      assert.equal((await hostEnv(trust)).DB_PASSWORD, earlier);
    });

    it("after the fix the FAILED line gives (that pg_hba.conf line to scram-sha-256, reload), the rotation changes the password and proves it: new one in, wrong and previous ones refused", async () => {
      const previous = (await hostEnv(trust)).DB_PASSWORD;
      await sh(
        fleet,
        trust,
        `f=$(runuser -u postgres -- psql -At -c 'SHOW hba_file'); ` +
          `sed -i -E 's,^(host[[:space:]]+all[[:space:]]+all[[:space:]]+127\\.0\\.0\\.1/32[[:space:]]+)trust,\\1scram-sha-256,' "$f"; ` +
          `runuser -u postgres -- psql -q -c 'SELECT pg_reload_conf()' >/dev/null`,
      );
      assert.notEqual(
        await loginCode(fleet, trust, `never-set-${randomValue(12)}`),
        0,
        "a wrong password is refused now",
      );
      const next = newPassword();
      const r = await rollout(fleet, trust, envFile({ DB_PASSWORD: next }).text, { extraArgs: ROTATE });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        /db password: changed for pms in PostgreSQL .* proven by a login to 127\.0\.0\.1:5432 \(a wrong password refused there, the previous one too\)/,
      );
      assert.equal(await loginCode(fleet, trust, next), 0);
      assert.notEqual(await loginCode(fleet, trust, previous), 0, "the previous password is refused");
      assert.equal(await health(trust), 200);
    });
  });

  describe("ordering and messages around the password change (scram-sha-256)", () => {
    it("a check command that connects to the database passes during a single-role rotation: it runs after the password change, under the new env", async () => {
      const previous = (await hostEnv(gate)).DB_PASSWORD;
      const next = newPassword();
      const r = await rollout(fleet, gate, envFile({ DB_PASSWORD: next }).text, {
        extraArgs: ROTATE,
        app: { checkCommand: DB_CHECK },
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(
        r.stdout.indexOf("db password: changed for pms") < r.stdout.indexOf("check: passed"),
        "the password is changed before the check runs",
      );
      assert.equal((await hostEnv(gate)).DB_PASSWORD, next);
      assert.equal(await loginCode(fleet, gate, next), 0);
      assert.notEqual(await loginCode(fleet, gate, previous), 0);
      assert.equal(await health(gate), 200);
    });

    it("the check still gates: one that fails after the password change puts the previous verifier and env back, with one FAILED line saying so", async () => {
      const before = await sh(fleet, gate, `cat ${ENV_FILE}`);
      const current = (await hostEnv(gate)).DB_PASSWORD;
      const verifier = await roleVerifier(fleet, gate, TEST_DB.user);
      const r = await rollout(fleet, gate, envFile({ DB_PASSWORD: newPassword() }).text, {
        extraArgs: ROTATE,
        app: { checkCommand: `${DB_CHECK} && echo refusing on purpose && false` },
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout, /check output: refusing on purpose/, "the check ran on the new password and connected");
      assert.deepEqual(failedLines(r.stderr).length, 1, r.stderr);
      assert.match(
        r.stderr,
        /pms-rollout FAILED host=dbgate service=pms-backend check=check-command: .*; previous env restored and services healthy on it/,
      );
      assert.doesNotMatch(r.stderr, /nothing on the host was changed/);
      assert.equal(await roleVerifier(fleet, gate, TEST_DB.user), verifier, "the previous verifier is back");
      assert.equal(await sh(fleet, gate, `cat ${ENV_FILE}`), before);
      assert.equal(await loginCode(fleet, gate, current), 0);
      assert.equal(await health(gate), 200);
    });

    it("a refusal after the password change (app.envFileGroup names no group on the host) rolls PostgreSQL back and prints one FAILED line that says so", async () => {
      const before = await sh(fleet, gate, `cat ${ENV_FILE}`);
      const current = (await hostEnv(gate)).DB_PASSWORD;
      const verifier = await roleVerifier(fleet, gate, TEST_DB.user);
      const r = await rollout(fleet, gate, envFile({ DB_PASSWORD: newPassword() }).text, {
        extraArgs: ROTATE,
        app: { envFileGroup: "nosuchgroup" },
      });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout, /db password: changed for pms/, "the refusal came after the password change");
      assert.deepEqual(failedLines(r.stderr), failedLines(r.stderr).slice(0, 1), "exactly one FAILED line");
      assert.equal(failedLines(r.stderr).length, 1, r.stderr);
      assert.match(
        r.stderr,
        /pms-rollout FAILED host=dbgate service=- check=env-file: group nosuchgroup does not exist on the host \(app\.envFileGroup\); previous env restored and services healthy on it/,
      );
      assert.doesNotMatch(r.stderr, /nothing on the host was changed/, "PostgreSQL had been changed");
      assert.match(r.stdout, /rollback: PostgreSQL role pms has its previous password again/);
      assert.equal(await roleVerifier(fleet, gate, TEST_DB.user), verifier);
      assert.equal(await sh(fleet, gate, `cat ${ENV_FILE}`), before);
      assert.equal(await loginCode(fleet, gate, current), 0);
      assert.equal(await health(gate), 200);
    });

    it("emergency with alternating roles: once the new env is proven, the role the app left gets a password nobody knows and its open sessions end; the next routine rotation still works", async () => {
      await superuserSql(fleet, gate, runbookRolesSql()[0]);
      const [a, b] = DB_ROLES;
      const p1 = (await hostEnv(gate)).DB_PASSWORD;
      const noUser = (values: Record<string, string>): string => envFile(values, ["DB_USER"]).text;
      // Onto the roles (pms_app_a, with the current password), then a routine rotation to pms_app_b.
      let r = await rollout(fleet, gate, noUser({ DB_PASSWORD: p1 }), { extraArgs: ROLES });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const p2 = newPassword();
      r = await rollout(fleet, gate, noUser({ DB_PASSWORD: p2 }), { extraArgs: ROLES });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await hostEnv(gate)).DB_USER, b);
      assert.equal(await loginCode(fleet, gate, p1, a), 0, "routine: the previous role keeps its password");

      // Someone holding p2 (the leak) has a session open as pms_app_b.
      await sh(
        fleet,
        gate,
        `f=$(mktemp); { printf '*:*:*:*:'; cat; } >"$f"; ` +
          `(env PGPASSFILE="$f" psql -X -w -h 127.0.0.1 -U ${b} -d ${TEST_DB.name} -c 'SELECT pg_sleep(300)' >/root/leak.out 2>&1; echo $? >/root/leak.rc; rm -f "$f") </dev/null >/dev/null 2>&1 &` +
          ` for i in $(seq 50); do [ "$(runuser -u postgres -- psql -X -At -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '${b}' AND query LIKE '%pg_sleep%'")" = 1 ] && exit 0; sleep 0.2; done; exit 1`,
        `${p2}\n`,
      );

      const p3 = newPassword();
      const emergencyEnv = noUser({ DB_PASSWORD: p3 });
      r = await rollout(fleet, gate, emergencyEnv, { extraArgs: [...ROLES, "--emergency"] });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /db password: changed for pms_app_a in PostgreSQL/);
      assert.match(
        r.stdout,
        /db password: EMERGENCY \(--emergency\): pms_app_b, the role the app used before, got a random password nobody knows \(stored nowhere\) and its [1-9]\d* open session\(s\) were ended; the previous DB_PASSWORD is refused for it/,
      );
      assert.ok(
        r.stdout.indexOf("restart: celery-pms active and stable") < r.stdout.indexOf("db password: EMERGENCY"),
        "closed only once the new env is proven",
      );
      assert.deepEqual([(await hostEnv(gate)).DB_USER, (await hostEnv(gate)).DB_PASSWORD], [a, p3]);
      assert.notEqual(await loginCode(fleet, gate, p2, b), 0, "the leaked password no longer opens pms_app_b");
      assert.notEqual(await loginCode(fleet, gate, p1, a), 0, "nor does the one before it open pms_app_a");
      assert.equal(await loginCode(fleet, gate, p3, a), 0);
      const leakRc = (
        await sh(
          fleet,
          gate,
          "for i in $(seq 50); do [ -s /root/leak.rc ] && break; sleep 0.2; done; cat /root/leak.rc",
        )
      ).trim();
      assert.ok(leakRc !== "" && leakRc !== "0", `the leaked session ended with an error (psql exit ${leakRc})`);
      assert.match(await sh(fleet, gate, "cat /root/leak.out"), /terminat/i, "the leaked session was ended");
      assert.equal(await health(gate), 200);
      assert.ok(await celeryRoundTrip(fleet, gate, `dbproof-${randomValue(8)}`), "Celery works on pms_app_a");
      assert.deepEqual(leaked(r.stdout + r.stderr, [p1, p2, p3]), []);
      assert.equal(await sh(fleet, gate, "ls /var/lib/pms-secrets/db-close-pending 2>/dev/null; true"), "");

      // A close that failed leaves the role named in the state dir (and the leaked password valid,
      // put back here by hand): the re-run of the same command finds the env in place and closes it.
      await superuserSql(fleet, gate, `SET log_statement = 'none';\nALTER ROLE ${b} PASSWORD '${p2}';\n`);
      await sh(fleet, gate, `printf '%s\\n' ${b} >/var/lib/pms-secrets/db-close-pending`);
      assert.equal(await loginCode(fleet, gate, p2, b), 0, "as a failed close leaves it");
      r = await rollout(fleet, gate, emergencyEnv, { extraArgs: [...ROLES, "--emergency"] });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /nothing to do/);
      assert.match(r.stdout, /db password: pms_app_b was left open by an earlier emergency run/);
      assert.notEqual(await loginCode(fleet, gate, p2, b), 0, "the re-run closed it");
      assert.equal(await sh(fleet, gate, "ls /var/lib/pms-secrets/db-close-pending 2>/dev/null; true"), "");
      const closed = await roleVerifier(fleet, gate, b);
      r = await rollout(fleet, gate, emergencyEnv, { extraArgs: [...ROLES, "--emergency"] });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await roleVerifier(fleet, gate, b), closed, "a re-run after that touches nothing");

      // The next routine rotation moves the app back to pms_app_b, which still has LOGIN.
      const p4 = newPassword();
      r = await rollout(fleet, gate, noUser({ DB_PASSWORD: p4 }), { extraArgs: ROLES });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /EMERGENCY/);
      assert.deepEqual([(await hostEnv(gate)).DB_USER, (await hostEnv(gate)).DB_PASSWORD], [b, p4]);
      assert.equal(await loginCode(fleet, gate, p4, b), 0);
      assert.equal(await loginCode(fleet, gate, p3, a), 0, "routine again: the previous role keeps its password");
      assert.equal(await health(gate), 200);
    });

    it("the runbook's manual close (when the FAILED line says check=db-emergency) runs as written: the role's password changes to one nobody knows, out of the server log, the app on the other role unharmed", async () => {
      const text = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
      const at = text.indexOf("If the close fails (`check=db-emergency`)");
      assert.ok(at >= 0, "docs/RUNBOOK.md has the manual close");
      const block = /```sh\n([\s\S]*?)```/.exec(text.slice(at))?.[1] ?? "";
      assert.match(block, /pg_terminate_backend/, "the close block follows the sentence");
      const [a, b] = DB_ROLES;
      const onHost = await hostEnv(gate);
      assert.equal(onHost.DB_USER, b, "the app runs on pms_app_b");
      const before = await roleVerifier(fleet, gate, a);
      await sh(
        fleet,
        gate,
        `runuser -u postgres -- psql -X -q -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()"`,
      );
      await sh(fleet, gate, "bash -euo pipefail -s", block.replaceAll("<role>", a));
      const after = await roleVerifier(fleet, gate, a);
      assert.notEqual(after, before);
      assert.match(after, /^SCRAM-SHA-256\$/, "stored as a SCRAM verifier");
      const logged = await fleet.exec(
        gate,
        "{ grep -rlF 'ALTER ROLE' /var/log/postgresql/; journalctl -q --no-pager -u 'postgresql*' | grep -F 'ALTER ROLE'; } 2>/dev/null; true",
      );
      assert.equal(logged.stdout.trim(), "", "the statement is not in the server log");
      assert.equal(await loginCode(fleet, gate, onHost.DB_PASSWORD, b), 0);
      assert.equal(await health(gate), 200);
    });
  });
});
