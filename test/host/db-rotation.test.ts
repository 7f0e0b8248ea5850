/**
 * DB_PASSWORD rotated in PostgreSQL and on the host as one operation (issue 10), on a booted host:
 * the program's own rollout command (rolloutCommand + `--rotate-db-password`, which the program
 * passes when DB_PASSWORD is generated) over real ssh with the program's stdin. PostgreSQL logs
 * every statement (log_statement=all, log_min_duration_statement=0) during the whole file, and a
 * sampler on the host records every process's argv every 50 ms while a rotation runs.
 *
 *   node --import tsx --test test/host/db-rotation.test.ts        (root, Linux)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ENV_FILE, envFile, leaked, randomValue, rollout, sh } from "./safety-host";
import { unavailable } from "./scenario";
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
const log = verboseLog;
const ROTATE = ["--rotate-db-password"];
/** A password like a generated one (safe alphabet: letters, digits, `-_.+=,`). */
const newPassword = (): string => `${randomValue(36)}-_.+=,${randomValue(6)}`;
const SAMPLES = "/root/h11-cmdlines";
const SAMPLER = "/root/h11-sampler.pid";

describe("DB_PASSWORD rotation with PostgreSQL (single role)", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;

  const psqlAs = async (password: string): Promise<number> => {
    // The password reaches psql through a root-only pgpass file written from stdin.
    const r = await fleet.exec(
      host,
      `set -e; f=$(mktemp); chmod 600 "$f"; { printf '*:*:*:*:'; cat; } >"$f"; ` +
        `env -u PGPASSWORD PGPASSFILE="$f" PGCONNECT_TIMEOUT=5 psql -X -w -At -h ${TEST_DB.host} -p ${TEST_DB.port} ` +
        `-U ${TEST_DB.user} -d ${TEST_DB.name} -c 'SELECT 1' >/dev/null 2>&1; rc=$?; rm -f "$f"; exit $rc`,
      { stdin: `${password}\n` },
    );
    return r.code;
  };
  const verifier = async (): Promise<string> =>
    (
      await sh(
        fleet,
        host,
        `runuser -u postgres -- psql -X -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = '${TEST_DB.user}'"`,
      )
    ).trim();
  const health = async (): Promise<number> => (await fleet.http(host, "/health/", { host: PUBLIC_HOST })).status;
  const celeryTaskDone = async (): Promise<boolean> => {
    const id = `dbrot-${randomBytes(4).toString("hex")}`;
    const post = await fleet.http(host, `/task/?id=${id}`, { method: "POST", host: PUBLIC_HOST });
    assert.equal(post.status, 202, post.body);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if ((await fleet.http(host, `/task/${id}/`, { host: PUBLIC_HOST })).status === 200) return true;
      await new Promise((res) => setTimeout(res, 500));
    }
    return false;
  };
  /** Every file PostgreSQL logs to on the host, plus its journal, that contains `value`. */
  const inPostgresLog = async (value: string): Promise<string> =>
    (
      await fleet.exec(
        host,
        "{ grep -rlF -f /dev/stdin /var/log/postgresql/; journalctl -q --no-pager -u 'postgresql*' | grep -cF -f /dev/stdin | grep -v '^0$'; } 2>/dev/null; true",
        { stdin: `${value}\n` },
      )
    ).stdout.trim();
  const startSampler = () =>
    sh(
      fleet,
      host,
      `rm -f ${SAMPLES}; (while :; do for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' <"$f" 2>/dev/null; echo; done >>${SAMPLES}; sleep 0.05; done) ` +
        `>/dev/null 2>&1 </dev/null & echo $! >${SAMPLER}`,
    );
  /** Stops the sampler (by its PID) and returns how many samples it took and which held `values`. */
  const stopSampler = async (values: string[]): Promise<{ lines: number; hits: string }> => {
    await sh(fleet, host, `kill "$(cat ${SAMPLER})"; rm -f ${SAMPLER}`);
    const lines = Number((await sh(fleet, host, `wc -l <${SAMPLES}`)).trim());
    const hits = (
      await fleet.exec(host, `grep -F -f /dev/stdin ${SAMPLES}; true`, { stdin: values.map((v) => `${v}\n`).join("") })
    ).stdout;
    return { lines, hits };
  };

  let current: string = TEST_DB.password;
  const marker = `h11-log-marker-${randomBytes(4).toString("hex")}`;

  before(async () => {
    fleet = await bootFleet(["dbrot"], log);
    host = fleet.hosts[0];
    await sh(
      fleet,
      host,
      `runuser -u postgres -- psql -X -q -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()"`,
    );
    // Proof that the server really logs statements now: this one must show up in its log.
    await sh(fleet, host, `runuser -u postgres -- psql -X -q -c "SELECT '${marker}'" >/dev/null`);
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
