/**
 * A database shared by several app hosts (issue 10, `generated.DB_PASSWORD.adminHost`), through
 * the real `pulumi up` (pulumi-cli.ts): two socket-activated hosts; `dbadm` runs PostgreSQL for
 * both. A veth pair joins the two hosts' network namespaces (10.78.0.1 on dbadm, 10.78.0.2 on
 * dbfol); dbadm's PostgreSQL also listens on 10.78.0.1 and its pg_hba.conf admits both addresses
 * with scram-sha-256, as an operator sets up a shared database. env.DB_HOST is 10.78.0.1 for both
 * hosts (dbfol's own PostgreSQL stays unused). With the alternating login roles (made with
 * docs/RUNBOOK.md's SQL on dbadm):
 *   - the move onto the roles, then a rotation under constant load on dbfol: one `pulumi up`
 *     moves both hosts to the same new role, dbadm (which changes the password) before dbfol
 *     (which only proves it), 0 failed requests, Celery works on both, no secret in any output;
 *   - a follower whose new password does not log in (PostgreSQL refuses it the new role) fails
 *     untouched, naming the admin host; once PostgreSQL admits it, a re-run moves it.
 * With one role: the admin host changes it once, the follower proves and moves; a follower that
 * fails after the change rolls back keeping the new password, on every unit, with a database check.
 *
 *   node --import tsx --test test/host/db-shared.test.ts        (root, Linux)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { hostSuite } from "./suite";
import { parseEnvFile } from "../../components/env-file";
import { DB_ROLES, loginCode, roleVerifier, runbookRolesSql, superuserSql } from "./bench/db";
import { DEFAULT_LOAD, startLoad } from "./bench/load";
import { PulumiStack, stepSequence } from "./pulumi-cli";
import { ENV_FILE, sh } from "./safety-host";
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
const ADMIN_ADDRESS = "10.78.0.1";
const FOLLOWER_ADDRESS = "10.78.0.2";
const HBA_MARK = "# pms-secrets db-shared test";

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

describe(
  "a database shared by two app hosts (generated.DB_PASSWORD.adminHost), through the real pulumi up",
  { skip },
  () => {
    let fleet: TestFleet;
    let admin: TestHost;
    let follower: TestHost;
    let stack: PulumiStack;
    let config: Record<string, unknown>;
    let veth = "";

    const hostEnv = async (h: TestHost): Promise<Record<string, string>> =>
      parseEnvFile(await sh(fleet, h, `cat ${ENV_FILE}`));
    const health = async (h: TestHost): Promise<number> =>
      (await fleet.http(h, "/health/", { host: PUBLIC_HOST })).status;
    const mainPid = (h: TestHost): Promise<string> =>
      sh(fleet, h, "systemctl show -p MainPID --value pms-backend.service");
    /** A Celery task on host `h` writes its row into the shared database. */
    const celeryTaskDone = (h: TestHost): Promise<boolean> =>
      celeryRoundTrip(fleet, h, `dbshared-${randomBytes(4).toString("hex")}`);
    /** 0 when `password` logs in as `user` from the follower to the admin host's PostgreSQL. */
    const loginFromFollower = (password: string, user: string): Promise<number> =>
      loginCode(fleet, follower, password, user, ADMIN_ADDRESS);
    const verifier = (role: string): Promise<string> => roleVerifier(fleet, admin, role);
    /** The admin host's pg_hba.conf lines for the two hosts (ours, marked), then a reload. */
    const setHba = async (followerRoles: string): Promise<void> => {
      await sh(
        fleet,
        admin,
        `f=$(runuser -u postgres -- psql -X -At -c 'SHOW hba_file'); sed -i '/${HBA_MARK}$/d' "$f"; ` +
          `printf 'host all all ${ADMIN_ADDRESS}/32 scram-sha-256 ${HBA_MARK}\\nhost all ${followerRoles} ${FOLLOWER_ADDRESS}/32 scram-sha-256 ${HBA_MARK}\\n' >>"$f"; ` +
          `runuser -u postgres -- psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null`,
      );
    };

    before(async () => {
      fleet = await bootFleet(["dbadm", "dbfol"], log, { variant: ["socket", "envfile"], httpHost: "public" });
      [admin, follower] = fleet.hosts;
      // The wire between the two hosts, as the balancer bench wires its namespace to the hosts'.
      veth = `hdb${process.pid % 100000}`;
      ip([
        "link",
        "add",
        `${veth}a`,
        "netns",
        `th-${admin.id}`,
        "type",
        "veth",
        "peer",
        "name",
        `${veth}f`,
        "netns",
        `th-${follower.id}`,
      ]);
      ip(["-n", `th-${admin.id}`, "addr", "add", `${ADMIN_ADDRESS}/30`, "dev", `${veth}a`]);
      ip(["-n", `th-${admin.id}`, "link", "set", `${veth}a`, "up"]);
      ip(["-n", `th-${follower.id}`, "addr", "add", `${FOLLOWER_ADDRESS}/30`, "dev", `${veth}f`]);
      ip(["-n", `th-${follower.id}`, "link", "set", `${veth}f`, "up"]);
      // The admin host's PostgreSQL serves both hosts: it listens on the wire, pg_hba admits both.
      await setHba("all");
      await sh(
        fleet,
        admin,
        `runuser -u postgres -- psql -X -q -c "ALTER SYSTEM SET listen_addresses = 'localhost,${ADMIN_ADDRESS}'" && systemctl restart postgresql.service && ` +
          `for i in $(seq 50); do pg_isready -q -h ${ADMIN_ADDRESS} && exit 0; sleep 0.2; done; exit 1`,
      );
      assert.equal(
        await loginFromFollower(TEST_DB.password, TEST_DB.user),
        0,
        "the follower reaches the shared database",
      );
      await superuserSql(fleet, admin, runbookRolesSql()[0]);

      stack = await PulumiStack.create({ stack: "db-shared", log });
      stack.noteSecret(TEST_DB.password);
      const base = fleetConfig(fleet, [admin, follower], { stableSeconds: 2, env: { DB_HOST: ADMIN_ADDRESS } });
      const secrets = { ...(base.secrets as Record<string, string>) };
      delete secrets.DB_PASSWORD;
      const env = { ...(base.env as Record<string, unknown>) };
      delete env.DB_USER;
      config = {
        ...base,
        secrets,
        env,
        generated: { ...(base.generated as object), DB_PASSWORD: { roles: [...DB_ROLES], adminHost: admin.name } },
      };
    });
    after(async () => {
      await stack?.dispose();
      if (admin && veth) spawnSync("ip", ["-n", `th-${admin.id}`, "link", "del", `${veth}a`]);
      await fleet?.teardown();
    });

    it("the move onto the roles, then a rotation under load on the follower: one pulumi up moves both hosts to the same new role, the admin host first; 0 failed requests, Celery on both, no secret in any output", async () => {
      await stack.setConfig(config);
      const first = await stack.up();
      assert.equal(first.code, 0, first.output);
      const p1 = stack.generatedValue("DB_PASSWORD");
      assert.match(
        String(stack.resource("dbadm-rollout")?.inputs.create),
        / --rotate-db-password --db-roles pms_app_a,pms_app_b --stable/,
      );
      assert.match(
        String(stack.resource("dbfol-rollout")?.inputs.create),
        / --rotate-db-password --db-roles pms_app_a,pms_app_b --db-follow dbadm /,
      );
      assert.match(first.output, /db password: changed for pms_app_a in PostgreSQL/);
      assert.match(
        first.output,
        /db roles: following dbadm \(the database's admin host\): the new password logs in as pms_app_a/,
      );
      for (const h of [admin, follower]) {
        const env = await hostEnv(h);
        assert.deepEqual([env.DB_USER, env.DB_PASSWORD, env.DB_HOST], ["pms_app_a", p1, ADMIN_ADDRESS], h.name);
      }
      assert.ok(
        stepSequence(first, "dbadm-rollout", "done") < stepSequence(first, "dbfol-rollout", "pre"),
        "admin host first",
      );

      const verifierA = await verifier("pms_app_a");
      config = { ...config, rotate: { DB_PASSWORD: "2026-11-26" } };
      await stack.setConfig(config);
      const load = await startLoad({
        netns: `th-${follower.id}`,
        port: 8000,
        hostHeader: PUBLIC_HOST,
        ...DEFAULT_LOAD,
      });
      const r = await stack.up();
      await new Promise((res) => setTimeout(res, 1500));
      const loaded = await load.stop();
      log(`follower under load: ${loaded.ok} ok, ${loaded.failed} failed, longest gap ${loaded.longestGapMs} ms`);
      assert.equal(r.code, 0, r.output);
      const p2 = stack.generatedValue("DB_PASSWORD");
      assert.notEqual(p2, p1);
      assert.ok(
        stepSequence(r, "dbadm-rollout", "done") < stepSequence(r, "dbfol-rollout", "pre"),
        "the admin host changes it before the follower moves",
      );
      assert.match(r.output, /db password: changed for pms_app_b in PostgreSQL/);
      assert.equal(
        (r.output.match(/db password: changed for/g) ?? []).length,
        1,
        "PostgreSQL is changed once, by the admin host",
      );
      assert.match(r.output, /following dbadm \(the database's admin host\): the new password logs in as pms_app_b/);
      for (const h of [admin, follower]) {
        const env = await hostEnv(h);
        assert.deepEqual([env.DB_USER, env.DB_PASSWORD], ["pms_app_b", p2], `${h.name} on the same new role`);
        assert.equal(await health(h), 200, h.name);
        assert.ok(await celeryTaskDone(h), `a Celery task on ${h.name}`);
      }
      assert.equal(await verifier("pms_app_a"), verifierA, "the role in use kept its password");
      assert.equal(await loginFromFollower(p2, "pms_app_b"), 0);
      assert.equal(
        await loginFromFollower(p1, "pms_app_a"),
        0,
        "the previous role keeps its password until the next rotation",
      );
      assert.equal(loaded.failed, 0, `failed requests on the follower: ${JSON.stringify(loaded.errors)}`);
      assert.ok(loaded.ok > 100, `the load generator got answers (${loaded.ok})`);
      assert.deepEqual(stack.leaks(), [], "no secret in any CLI output");
    });

    it("a follower whose new password does not log in fails untouched, naming the admin host; once PostgreSQL admits it, a re-run moves it", async () => {
      const p2 = stack.generatedValue("DB_PASSWORD");
      // The shared database admits the follower for its current role only: the role the admin host
      // moves to is refused from there.
      await setHba("pms_app_b");
      const before = await sh(fleet, follower, `cat ${ENV_FILE}`);
      const pid = await mainPid(follower);
      config = { ...config, rotate: { DB_PASSWORD: "2026-11-26.2" } };
      await stack.setConfig(config);
      const r = await stack.up();
      assert.notEqual(r.code, 0, "the follower fails");
      const p3 = stack.generatedValue("DB_PASSWORD");
      assert.match(r.output, /db password: changed for pms_app_a in PostgreSQL/, "the admin host moved");
      assert.match(
        r.output,
        /pms-rollout FAILED host=dbfol service=- check=db-password: the new DB_PASSWORD does not log in to 10\.78\.0\.1:5432 as pms_app_a nor as pms_app_b; the database's admin host dbadm changes it first in this run\. Fix: .*; nothing on the host was changed/,
      );
      assert.equal(await sh(fleet, follower, `cat ${ENV_FILE}`), before, "the follower's env file is untouched");
      assert.equal(await mainPid(follower), pid, "nothing restarted on the follower");
      assert.equal(await health(follower), 200, "the follower still runs on pms_app_b, which kept its password");
      assert.deepEqual([(await hostEnv(admin)).DB_USER, (await hostEnv(admin)).DB_PASSWORD], ["pms_app_a", p3]);
      assert.equal(await health(admin), 200);

      await setHba("all");
      const again = await stack.up();
      assert.equal(again.code, 0, again.output);
      assert.match(
        again.output,
        /following dbadm \(the database's admin host\): the new password logs in as pms_app_a/,
      );
      assert.doesNotMatch(again.output, /db password: changed for/, "PostgreSQL is not changed again");
      assert.deepEqual([(await hostEnv(follower)).DB_USER, (await hostEnv(follower)).DB_PASSWORD], ["pms_app_a", p3]);
      assert.equal(await health(follower), 200);
      assert.ok(await celeryTaskDone(follower), "Celery on the follower after it moved");
      assert.equal(await loginFromFollower(p2, "pms_app_b"), 0, "pms_app_b keeps p2 until the next rotation");
      assert.deepEqual(stack.leaks(), [], "no secret in any CLI output");
    });

    it("single role on the shared database: the admin host changes pms's password once, the follower proves it over TCP and moves in the same run; the old password is refused", async () => {
      // Back to one login role (pms still has LOGIN: the runbook's second SQL block was not run).
      const env = { ...(config.env as Record<string, unknown>), DB_USER: TEST_DB.user };
      config = {
        ...config,
        env,
        generated: { ...(config.generated as object), DB_PASSWORD: { adminHost: admin.name } },
        rotate: { DB_PASSWORD: "2026-11-27" },
      };
      await stack.setConfig(config);
      const r = await stack.up();
      assert.equal(r.code, 0, r.output);
      const p4 = stack.generatedValue("DB_PASSWORD");
      assert.match(
        String(stack.resource("dbfol-rollout")?.inputs.create),
        / --rotate-db-password --db-follow dbadm /,
        "the follower's command follows the admin host, without roles",
      );
      assert.ok(
        stepSequence(r, "dbadm-rollout", "done") < stepSequence(r, "dbfol-rollout", "pre"),
        "the admin host changes it before the follower moves",
      );
      assert.equal(
        (r.output.match(/db password: changed for pms in PostgreSQL/g) ?? []).length,
        1,
        "PostgreSQL is changed once, by the admin host",
      );
      assert.match(
        r.output,
        /db password: following dbadm \(the database's admin host\): the new password logs in to 10\.78\.0\.1:5432 as pms; no change in PostgreSQL from this host/,
      );
      for (const h of [admin, follower]) {
        const e = await hostEnv(h);
        assert.deepEqual([e.DB_USER, e.DB_PASSWORD], [TEST_DB.user, p4], h.name);
        assert.equal(await health(h), 200, h.name);
        assert.ok(await celeryTaskDone(h), `a Celery task on ${h.name}`);
      }
      assert.equal(await loginFromFollower(p4, TEST_DB.user), 0);
      assert.notEqual(await loginFromFollower(TEST_DB.password, TEST_DB.user), 0, "the old password is refused");
      assert.deepEqual(stack.leaks(), [], "no secret in any CLI output");
    });

    it("single role: a follower that fails after the admin host changed the password rolls back keeping the new DB_PASSWORD (PostgreSQL refuses the previous one), restarts every unit on it and proves a database login; the health URL alone does not touch the database", async () => {
      const p4 = stack.generatedValue("DB_PASSWORD");
      const good = config;
      // A health URL that answers without the database (as many apps' do), and a follower whose
      // gunicorn refuses its next start once (`+`: as root, which may remove the marker in /run):
      // the follower fails after the admin host moved.
      config = {
        ...config,
        app: { ...(config.app as object), healthUrl: "http://127.0.0.1:8000/key-fingerprint/" },
        rotate: { DB_PASSWORD: "2026-11-28" },
      };
      await sh(
        fleet,
        follower,
        "install -d /etc/systemd/system/pms-backend.service.d && " +
          "printf '[Service]\\nExecStartPre=+/bin/sh -c \"if [ -e /run/pms-fail-once ]; then rm -f /run/pms-fail-once; exit 1; fi\"\\n' " +
          ">/etc/systemd/system/pms-backend.service.d/10-fail-once.conf && systemctl daemon-reload && touch /run/pms-fail-once",
      );
      await stack.setConfig(config);
      const r = await stack.up();
      assert.notEqual(r.code, 0, "the follower fails");
      const p5 = stack.generatedValue("DB_PASSWORD");
      assert.notEqual(p5, p4);
      assert.match(r.output, /db password: changed for pms in PostgreSQL/, "the admin host changed it");
      assert.match(
        r.output,
        /rollback: the previous env goes back with the new DB_PASSWORD, which dbadm set in the shared database/,
      );
      assert.match(
        r.output,
        /rollback: the restored DB_PASSWORD logs in to 10\.78\.0\.1:5432 as pms \(database check\)/,
      );
      assert.match(
        r.output,
        /pms-rollout FAILED host=dbfol service=pms-backend check=restart: .*previous env restored \(with the new DB_PASSWORD from dbadm: PostgreSQL no longer accepts the previous one\) and services healthy on it/,
      );
      assert.notEqual(await loginFromFollower(p4, TEST_DB.user), 0, "PostgreSQL refuses the previous password");
      assert.equal(
        (await hostEnv(follower)).DB_PASSWORD,
        p5,
        "the follower's env keeps the password PostgreSQL accepts",
      );
      assert.equal(await health(follower), 200, "the follower's database-backed /health/ works after the rollback");
      assert.ok(await celeryTaskDone(follower), "Celery on the follower reaches the database after the rollback");
      assert.deepEqual(stack.leaks(), [], "no secret in any CLI output");

      // Fixed (the unit starts again): the re-run converges the follower.
      await sh(
        fleet,
        follower,
        "rm -f /etc/systemd/system/pms-backend.service.d/10-fail-once.conf && systemctl daemon-reload",
      );
      const again = await stack.up();
      assert.equal(again.code, 0, again.output);
      assert.doesNotMatch(again.output, /db password: changed for/, "PostgreSQL is not changed again");
      assert.equal((await hostEnv(follower)).DB_PASSWORD, p5);
      assert.equal(await health(follower), 200);
      config = { ...good, rotate: config.rotate };
    });
  },
);
