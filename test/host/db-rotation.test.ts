/**
 * DB_PASSWORD rotated in PostgreSQL and on the host as one operation (issue 10), on a booted host:
 * the program's own rollout command (rolloutCommand + `--rotate-db-password`, which the program
 * passes when DB_PASSWORD is generated) over real ssh with the program's stdin. PostgreSQL logs
 * every statement (log_statement=all, log_min_duration_statement=0) during the whole file, and a
 * sampler on the host records every process's argv every 50 ms while a rotation runs.
 *
 * The second part goes through the real `pulumi up` (pulumi-cli.ts) on a socket-activated host
 * under constant load on /health/ (a SELECT 1 on a new connection per request): a single-role
 * rotation, then the alternating login roles (generated.DB_PASSWORD.roles) created with the exact
 * SQL of docs/RUNBOOK.md, rotated with zero failed requests, a re-run, and a failed rollout after
 * the password change.
 *
 *   node --import tsx --test test/host/db-rotation.test.ts        (root, Linux)
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import * as fs from "node:fs";
import { randomBytes } from "node:crypto";
import { parseEnvFile } from "../../components/env-file";
import { DB_ROLES, loginCode, roleVerifier, runbookRolesSql, superuserSql } from "./bench/db";
import { DEFAULT_LOAD, type LoadResult, startLoad } from "./bench/load";
import { type CliResult, PulumiStack } from "./pulumi-cli";
import { hostSuite } from "./suite";
import { ENV_FILE, envFile, leaked, randomValue, rollout, sh } from "./safety-host";
import { celeryRoundTrip, fleetConfig, unavailable } from "./scenario";
import {
  bootFleet,
  hostTestsUnavailableReason,
  PUBLIC_HOST,
  TEST_DB,
  type TestFleet,
  type TestHost,
  verboseLog,
} from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
const ROTATE = ["--rotate-db-password"];
/** A password like a generated one (safe alphabet: letters, digits, `-_.+=,`). */
const newPassword = (): string => `${randomValue(36)}-_.+=,${randomValue(6)}`;
const SAMPLES = "/root/h11-cmdlines";
const SAMPLER = "/root/h11-sampler.pid";

/** What the tests read on a host: logins, verifiers, the app, Celery, PostgreSQL's log, argv samples. */
function dbProbe(fleet: TestFleet, host: TestHost) {
  const probe = {
    psqlAs: (password: string, user: string = TEST_DB.user): Promise<number> => loginCode(fleet, host, password, user),
    verifier: (role: string = TEST_DB.user): Promise<string> => roleVerifier(fleet, host, role),
    /** SQL run by the database superuser on stdin, as the runbook says an operator runs it. */
    superuserSql: (sql: string): Promise<void> => superuserSql(fleet, host, sql),
    health: async (): Promise<number> => (await fleet.http(host, "/health/", { host: PUBLIC_HOST })).status,
    celeryTaskDone: (): Promise<boolean> => celeryRoundTrip(fleet, host, `dbrot-${randomBytes(4).toString("hex")}`),
    /** Every file PostgreSQL logs to on the host, plus its journal, that contains `value`. */
    inPostgresLog: async (value: string): Promise<string> =>
      (
        await fleet.exec(
          host,
          "{ grep -rlF -f /dev/stdin /var/log/postgresql/; journalctl -q --no-pager -u 'postgresql*' | grep -cF -f /dev/stdin | grep -v '^0$'; } 2>/dev/null; true",
          { stdin: `${value}\n` },
        )
      ).stdout.trim(),
    /** Makes PostgreSQL log every statement, and proves it does with a marker it must find. */
    logAllStatements: async (): Promise<string> => {
      const marker = `h11-log-marker-${randomBytes(4).toString("hex")}`;
      await sh(
        fleet,
        host,
        `runuser -u postgres -- psql -X -q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()"`,
      );
      await sh(fleet, host, `runuser -u postgres -- psql -X -q -c "SELECT '${marker}'" >/dev/null`);
      return marker;
    },
    startSampler: () =>
      sh(
        fleet,
        host,
        `rm -f ${SAMPLES}; (while :; do for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <"$f" 2>/dev/null; echo; done >>${SAMPLES}; sleep 0.05; done) ` +
          `>/dev/null 2>&1 </dev/null & echo $! >${SAMPLER}`,
      ),
    /** Stops the sampler (by its PID) and returns how many samples it took and which held `values`. */
    stopSampler: async (values: string[]): Promise<{ lines: number; hits: string }> => {
      await sh(fleet, host, `kill "$(cat ${SAMPLER})"; rm -f ${SAMPLER}`);
      const lines = Number((await sh(fleet, host, `wc -l <${SAMPLES}`)).trim());
      const hits = (
        await fleet.exec(host, `grep -F -f /dev/stdin ${SAMPLES}; true`, {
          stdin: values.map((v) => `${v}\n`).join(""),
        })
      ).stdout;
      return { lines, hits };
    },
  };
  return probe;
}

describe("DB_PASSWORD rotation with PostgreSQL (single role)", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let db: ReturnType<typeof dbProbe>;
  const psqlAs = (password: string): Promise<number> => db.psqlAs(password);
  const verifier = (): Promise<string> => db.verifier();
  const health = (): Promise<number> => db.health();
  const celeryTaskDone = (): Promise<boolean> => db.celeryTaskDone();
  const inPostgresLog = (value: string): Promise<string> => db.inPostgresLog(value);
  const startSampler = (): Promise<string> => db.startSampler();
  const stopSampler = (values: string[]): Promise<{ lines: number; hits: string }> => db.stopSampler(values);

  let current: string = TEST_DB.password;
  let marker = "";

  before(async () => {
    fleet = await bootFleet(["dbrot"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    db = dbProbe(fleet, host);
    // Proof that the server really logs statements now: the marker must show up in its log.
    marker = await db.logAllStatements();
  });
  after(async () => {
    await fleet?.teardown();
  });

  it("first deploy with the password PostgreSQL already has: no change in PostgreSQL, app up", async () => {
    const before = await verifier();
    const r = await rollout(fleet, host, envFile({ DB_PASSWORD: current }).text, { extraArgs: ROTATE });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /already accepts the new password/);
    assert.equal(await verifier(), before, "no ALTER ROLE when the role already has the password");
    assert.equal(await health(), 200);
  });

  it("rotation: PostgreSQL and the env file move together; app and a Celery task work on the new password, the old one is refused; the password is in no argv, no PostgreSQL log, no output; a re-run changes nothing", async () => {
    const old = current;
    const next = newPassword();
    const oldVerifier = await verifier();
    const env = envFile({ DB_PASSWORD: next }).text;
    await startSampler();
    const r = await rollout(fleet, host, env, { extraArgs: ROTATE });
    const sampled = await stopSampler([next, old]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    current = next;
    assert.match(
      r.stdout,
      /db password: changed for pms in PostgreSQL \(SCRAM-SHA-256 verifier, statement not logged\) and proven by a login/,
    );
    assert.match(
      await sh(fleet, host, `cat ${ENV_FILE}`),
      new RegExp(`^DB_PASSWORD='${next.replace(/[.+=]/g, "\\$&")}'$`, "m"),
    );
    const v = await verifier();
    assert.notEqual(v, oldVerifier);
    assert.match(v, /^SCRAM-SHA-256\$4096:/);

    assert.equal(await health(), 200, "the app (its /health/ queries PostgreSQL) works on the new password");
    assert.ok(await celeryTaskDone(), "a Celery task writes its row with the new password");
    assert.equal(await psqlAs(next), 0, "the new password logs in");
    assert.notEqual(await psqlAs(old), 0, "PostgreSQL refuses the old password");

    assert.ok(sampled.lines > 100, `the argv sampler ran (${sampled.lines} lines)`);
    assert.equal(sampled.hits, "", "no process had a password in its argv");
    assert.deepEqual(leaked(r.stdout + r.stderr, [next, old]), [], "no password in the output");
    assert.notEqual(await inPostgresLog(marker), "", "sanity: the server logs statements");
    assert.equal(await inPostgresLog(next), "", "the new password is in no PostgreSQL log");
    assert.equal(await inPostgresLog("ALTER ROLE"), "", "the ALTER ROLE statement itself was not logged");

    const again = await rollout(fleet, host, env, { extraArgs: ROTATE });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /nothing to do/);
    assert.equal(await verifier(), v, "a re-run touches nothing in PostgreSQL");
  });

  it("a rotation that fails after the password change (health check after the restart) restores the exact previous verifier with the previous env; the app stays healthy", async () => {
    const next = newPassword();
    const oldVerifier = await verifier();
    const before = await sh(fleet, host, `cat ${ENV_FILE}`);
    // The new env also breaks the app for its public name: the health check after restart fails.
    const broken = envFile({ DB_PASSWORD: next, ALLOWED_HOSTS: "not-this-app.invalid" }).text;
    await startSampler();
    const r = await rollout(fleet, host, broken, { extraArgs: ROTATE });
    const sampled = await stopSampler([next, current]);
    assert.notEqual(r.code, 0, "the rollout fails");
    assert.match(r.stdout, /db password: changed for pms/, "the password was changed before the failure");
    assert.match(r.stdout, /rollback: PostgreSQL role pms has its previous password again/);
    assert.match(
      r.stderr,
      /pms-rollout FAILED host=\S+ service=pms-backend check=health.*previous env restored and services healthy on it/,
    );
    assert.equal(await verifier(), oldVerifier, "PostgreSQL has exactly the previous verifier");
    assert.equal(await sh(fleet, host, `cat ${ENV_FILE}`), before, "the previous env file is back");
    assert.equal(await psqlAs(current), 0, "the previous password logs in");
    assert.notEqual(await psqlAs(next), 0, "the new password is refused");
    assert.equal(await health(), 200);
    assert.ok(await celeryTaskDone(), "Celery works on the previous password");
    assert.equal(sampled.hits, "", "no process had a password in its argv");
    assert.deepEqual(leaked(r.stdout + r.stderr, [next, current]), []);
    assert.equal(await inPostgresLog(next), "");
    assert.equal(await inPostgresLog("ALTER ROLE"), "");
  });

  it("the runbook's manual restore from the kept verifier file (when a rollback could not restore it) puts the exact previous verifier back, out of the server log", async () => {
    const text = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
    const at = text.indexOf("the old verifier is in the named root-only file");
    assert.ok(at >= 0, "docs/RUNBOOK.md has the manual restore");
    const block = /```sh\n([\s\S]*?)```/.exec(text.slice(at))?.[1] ?? "";
    assert.ok(block?.includes("db-old-verifier"), "the restore block follows the sentence");
    const oldVerifier = await verifier();
    // What a failed restore leaves: the previous verifier in the root-only state file, and
    // PostgreSQL on some other password (set here out of the log, as the rollout does).
    await sh(fleet, host, "install -m 0600 /dev/stdin /var/lib/pms-secrets/db-old-verifier.pms", oldVerifier);
    await db.superuserSql(
      `SET log_statement = 'none';\nSET log_min_duration_statement = -1;\nALTER ROLE pms PASSWORD '${newPassword()}';\n`,
    );
    assert.notEqual(await psqlAs(current), 0, "the app's password no longer logs in");
    await sh(fleet, host, "bash -euo pipefail -s", block.replaceAll("<role>", "pms"));
    assert.equal(await verifier(), oldVerifier, "the exact previous verifier is back");
    assert.equal(await psqlAs(current), 0, "the app's password logs in again");
    assert.equal(await health(), 200);
    assert.equal(await inPostgresLog(oldVerifier), "", "the verifier is not in the server log");
    assert.equal(await inPostgresLog("ALTER ROLE"), "");
  });

  it("a database that is not on this host is refused before anything changes", async () => {
    const before = await sh(fleet, host, `cat ${ENV_FILE}`);
    const oldVerifier = await verifier();
    const r = await rollout(fleet, host, envFile({ DB_PASSWORD: newPassword(), DB_HOST: "10.9.8.7" }).text, {
      extraArgs: ROTATE,
    });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /FAILED host=\S+ service=- check=db-password: DB_HOST '10\.9\.8\.7' is not this host.*Fix: .*nothing on the host was changed/,
    );
    assert.equal(await sh(fleet, host, `cat ${ENV_FILE}`), before);
    assert.equal(await verifier(), oldVerifier);
    assert.equal(await health(), 200);
  });
});

const ROLES = DB_ROLES;

describe(
  "DB_PASSWORD rotation through the real pulumi up: single role, then alternating roles under load",
  { skip },
  () => {
    let fleet: TestFleet;
    let host: TestHost;
    let stack: PulumiStack;
    let db: ReturnType<typeof dbProbe>;
    let config: Record<string, unknown>;
    let marker = "";
    const [createRolesSql, retireOwnerLoginSql] = runbookRolesSql();

    const hostEnv = async (): Promise<Record<string, string>> => parseEnvFile(await sh(fleet, host, `cat ${ENV_FILE}`));
    const load = () => startLoad({ netns: `th-${host.id}`, port: 8000, hostHeader: PUBLIC_HOST, ...DEFAULT_LOAD });
    /** `pulumi up` under constant load on /health/, with the argv sampler on. */
    const upUnderLoad = async (
      watch: string[],
    ): Promise<{ up: CliResult; load: LoadResult; argv: { lines: number; hits: string } }> => {
      const running = await load();
      await db.startSampler();
      const up = await stack.up();
      // Answers queued during the last restart are counted too.
      await new Promise((res) => setTimeout(res, 1500));
      const result = await running.stop();
      const argv = await db.stopSampler([...watch, ...stack.secrets.filter((s) => !s.includes("\n"))]);
      log(
        `load: ${result.ok} ok, ${result.failed} failed ${JSON.stringify(result.errors)}, longest gap ${result.longestGapMs} ms`,
      );
      return { up, load: result, argv };
    };
    const assertClean = async (r: { up: CliResult; argv: { lines: number; hits: string } }, passwords: string[]) => {
      assert.ok(r.argv.lines > 100, `the argv sampler ran (${r.argv.lines} lines)`);
      assert.equal(r.argv.hits, "", "no process had a secret in its argv");
      assert.deepEqual(stack.leaks(), [], "no secret in any CLI output");
      for (const p of passwords) assert.equal(await db.inPostgresLog(p), "", "no password in PostgreSQL's log");
      // The runbook's own ALTER ROLE statements are logged (the superuser ran them by hand); the
      // program's never are: no statement with a password literal or a verifier.
      assert.equal(await db.inPostgresLog("PASSWORD '"), "", "no ALTER ROLE ... PASSWORD statement logged");
      assert.equal(await db.inPostgresLog("SCRAM-SHA-256$"), "", "no verifier logged");
      assert.notEqual(await db.inPostgresLog(marker), "", "sanity: the server logs statements");
    };

    before(async () => {
      fleet = await bootFleet(["dbcli"], log, { variant: ["socket", "envfile"], httpHost: "public" });
      host = fleet.hosts[0];
      db = dbProbe(fleet, host);
      marker = await db.logAllStatements();
      stack = await PulumiStack.create({ stack: "db-rotation", log });
      stack.noteSecret(TEST_DB.password);
      const base = fleetConfig(fleet, [host], { stableSeconds: 2 });
      const secrets = { ...(base.secrets as Record<string, string>) };
      delete secrets.DB_PASSWORD;
      config = { ...base, secrets, generated: { ...(base.generated as object), DB_PASSWORD: {} } };
    });
    after(async () => {
      await stack?.dispose();
      await fleet?.teardown();
    });

    it("single role: the first pulumi up changes pms's password in PostgreSQL with the env file; app, Celery and the new password work, the old one is refused", async () => {
      await stack.setConfig(config);
      const r = await upUnderLoad([TEST_DB.password]);
      assert.equal(r.up.code, 0, r.up.output);
      const p1 = stack.generatedValue("DB_PASSWORD");
      assert.match(r.up.output, /db password: changed for pms in PostgreSQL/);
      assert.equal((await hostEnv()).DB_PASSWORD, p1);
      assert.equal(await db.psqlAs(p1), 0, "the new password logs in");
      assert.notEqual(await db.psqlAs(TEST_DB.password), 0, "PostgreSQL refuses the old one");
      assert.equal(await db.health(), 200);
      assert.ok(await db.celeryTaskDone(), "a Celery task writes its row with the new password");
      // Between the password change and gunicorn's restart, new connections with the old one fail:
      // recorded here (the bench reports it), not asserted either way.
      log(`single role: ${r.load.failed} of ${r.load.ok + r.load.failed} requests failed`);
      await assertClean(r, [p1, TEST_DB.password]);
    });

    it("alternating roles, adopted with the runbook's SQL: the host moves from pms to pms_app_a with no failed request", async () => {
      await db.superuserSql(createRolesSql);
      const p1 = stack.generatedValue("DB_PASSWORD");
      const env = { ...(config.env as Record<string, unknown>) };
      delete env.DB_USER;
      config = { ...config, env, generated: { ...(config.generated as object), DB_PASSWORD: { roles: [...ROLES] } } };
      await stack.setConfig(config);
      const r = await upUnderLoad([]);
      assert.equal(r.up.code, 0, r.up.output);
      assert.match(
        String(stack.resource("dbcli-rollout")?.inputs.create),
        / --rotate-db-password --db-roles pms_app_a,pms_app_b /,
      );
      assert.match(
        r.up.output,
        /db roles: the host's DB_USER is pms, neither of pms_app_a, pms_app_b: moving to pms_app_a/,
      );
      const onHost = await hostEnv();
      assert.equal(onHost.DB_USER, "pms_app_a");
      assert.equal(onHost.DB_PASSWORD, p1, "the password itself did not change");
      assert.equal(r.load.failed, 0, `failed requests: ${JSON.stringify(r.load.errors)}`);
      assert.ok(r.load.ok > 100, `the load generator got answers (${r.load.ok})`);
      await db.superuserSql(retireOwnerLoginSql);
      assert.notEqual(await db.psqlAs(p1, "pms"), 0, "the owner role logs in no more");
      assert.equal(await db.psqlAs(p1, "pms_app_a"), 0);
      assert.equal(await db.health(), 200);
      assert.ok(await db.celeryTaskDone(), "Celery writes through pms_app_a (as the owner role)");
      await assertClean(r, [p1]);
    });

    it("alternating rotation by a keeper change under constant load: 0 failed requests, DB_USER flips to pms_app_b, both roles log in, Celery works; a re-run changes nothing; the next rotation flips back", async () => {
      const p1 = stack.generatedValue("DB_PASSWORD");
      const verifierA = await db.verifier("pms_app_a");
      config = { ...config, rotate: { DB_PASSWORD: "2026-11-26" } };
      await stack.setConfig(config);
      const r = await upUnderLoad([p1]);
      assert.equal(r.up.code, 0, r.up.output);
      const p2 = stack.generatedValue("DB_PASSWORD");
      assert.notEqual(p2, p1);
      assert.match(r.up.output, /db roles: DB_PASSWORD changes; it goes to pms_app_b, the role the app does not use/);
      assert.match(r.up.output, /db password: changed for pms_app_b in PostgreSQL/);
      assert.equal(r.load.failed, 0, `failed requests: ${JSON.stringify(r.load.errors)}`);
      assert.ok(r.load.ok > 100, `the load generator got answers (${r.load.ok})`);
      const onHost = await hostEnv();
      assert.deepEqual([onHost.DB_USER, onHost.DB_PASSWORD], ["pms_app_b", p2]);
      assert.equal(await db.psqlAs(p2, "pms_app_b"), 0, "the new role logs in with the new password");
      assert.equal(await db.psqlAs(p1, "pms_app_a"), 0, "the previous role keeps its password until the next rotation");
      assert.equal(await db.verifier("pms_app_a"), verifierA, "pms_app_a untouched");
      assert.notEqual(await db.psqlAs(p1, "pms_app_b"), 0);
      assert.equal(await db.health(), 200);
      assert.ok(await db.celeryTaskDone(), "a Celery task after the rotation");
      await assertClean(r, [p1, p2]);

      // A re-run of the rollout (connection change) with the same password: same role, nothing restarts.
      const verifierB = await db.verifier("pms_app_b");
      const pid = await sh(fleet, host, "systemctl show -p MainPID --value pms-backend.service");
      config = { ...config, sshTimeoutSeconds: 12 };
      await stack.setConfig(config);
      const again = await stack.up();
      assert.equal(again.code, 0, again.output);
      assert.match(again.output, /db roles: DB_PASSWORD unchanged; the app stays on pms_app_b/);
      assert.match(again.output, /already in place and proven in the running processes; nothing to do/);
      assert.equal((await hostEnv()).DB_USER, "pms_app_b");
      assert.deepEqual(
        [await db.verifier("pms_app_a"), await db.verifier("pms_app_b")],
        [verifierA, verifierB],
        "a re-run touches nothing in PostgreSQL",
      );
      assert.equal(await sh(fleet, host, "systemctl show -p MainPID --value pms-backend.service"), pid, "no restart");

      config = { ...config, rotate: { DB_PASSWORD: "2026-11-26.2" } };
      await stack.setConfig(config);
      const back = await upUnderLoad([p1, p2]);
      assert.equal(back.up.code, 0, back.up.output);
      const p3 = stack.generatedValue("DB_PASSWORD");
      assert.equal(back.load.failed, 0, `failed requests: ${JSON.stringify(back.load.errors)}`);
      assert.deepEqual([(await hostEnv()).DB_USER, (await hostEnv()).DB_PASSWORD], ["pms_app_a", p3]);
      assert.equal(await db.psqlAs(p3, "pms_app_a"), 0);
      assert.notEqual(await db.psqlAs(p1, "pms_app_a"), 0, "the password of two rotations ago is gone");
      assert.equal(await db.psqlAs(p2, "pms_app_b"), 0);
      await assertClean(back, [p1, p2, p3]);
    });

    it("a rollout that fails after the password change (the new env breaks gunicorn) restores the changed role's verifier and the previous env with its DB_USER; the app stays healthy", async () => {
      const before = await sh(fleet, host, `cat ${ENV_FILE}`);
      const p3 = stack.generatedValue("DB_PASSWORD");
      const verifierB = await db.verifier("pms_app_b");
      const good = config;
      config = {
        ...config,
        rotate: { DB_PASSWORD: "2026-11-26.3" },
        // Django imports the session engine when gunicorn loads the app: no worker boots.
        env: { ...(config.env as object), SESSION_ENGINE: "pmsapp.no_such_session_engine" },
      };
      await stack.setConfig(config);
      await db.startSampler();
      const r = await stack.up();
      const argv = await db.stopSampler([p3, ...stack.secrets]);
      assert.notEqual(r.code, 0, "the rollout fails");
      const p4 = stack.generatedValue("DB_PASSWORD");
      assert.notEqual(p4, p3, "a new password was made and delivered");
      assert.match(
        r.output,
        /db password: changed for pms_app_b in PostgreSQL/,
        "the password was changed before the failure",
      );
      assert.match(r.output, /rollback: PostgreSQL role pms_app_b has its previous password again/);
      assert.match(
        r.output,
        /pms-rollout FAILED host=dbcli service=pms-backend check=\S+.*previous env restored and services healthy on it/,
      );
      assert.equal(
        await db.verifier("pms_app_b"),
        verifierB,
        "PostgreSQL has exactly the previous verifier of pms_app_b",
      );
      assert.equal(
        await sh(fleet, host, `cat ${ENV_FILE}`),
        before,
        "the previous env file (DB_USER=pms_app_a) is back",
      );
      assert.notEqual(await db.psqlAs(p4, "pms_app_b"), 0, "the new password is refused");
      assert.equal(await db.psqlAs(p3, "pms_app_a"), 0, "the app's role and password still log in");
      assert.equal(await db.health(), 200);
      assert.ok(await db.celeryTaskDone(), "Celery works on the previous env");
      assert.equal(argv.hits, "");
      assert.deepEqual(stack.leaks(), []);
      assert.equal(await db.inPostgresLog(p4), "");
      assert.equal(await db.inPostgresLog("PASSWORD '"), "", "neither the change nor the restore was logged");
      assert.equal(await db.inPostgresLog("SCRAM-SHA-256$"), "");
      config = good;
    });
  },
);
