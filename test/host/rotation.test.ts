/**
 * Rotations end to end on real hosts: the real program runs under Pulumi's
 * mocks with a stack config pointing at booted test hosts; the engine model
 * (engine.ts) runs the commands it generates over real SSH, as `pulumi up`
 * would; every assertion reads the host's real state.
 *
 *   node --import tsx --test test/host/rotation.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ROLLOUT_SCRIPT } from "../../components/host-rollout";
import { EngineModel } from "./engine";
import {
  appKeyFingerprint,
  celeryRoundTrip,
  ENV_FILE,
  fleetConfig,
  generatedValue,
  hostFile,
  keyFingerprint,
  sentEnvFile,
  servicesState,
  unavailable,
  waitForTaskRow,
} from "./scenario";
import { APP, bootFleet, hostTestsUnavailableReason, TestFleet, TestHost } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const log = (line: string): void => {
  if (process.env.PMS_TESTHOST_VERBOSE) process.stderr.write(`${line}\n`);
};

/** Asserts a host runs exactly what the engine's last run sent it, healthy, on the expected key. */
async function assertDeployed(fleet: TestFleet, engine: EngineModel, host: TestHost): Promise<void> {
  const env = await hostFile(fleet, host, ENV_FILE);
  assert.equal(env.content, sentEnvFile(engine, host), `${host.name}: env file bytes`);
  assert.equal(env.mode, "600");
  assert.equal(env.owner, "root:root");
  const units = await servicesState(fleet, host);
  for (const [svc, u] of Object.entries(units)) {
    assert.equal(u.activeState, "active", `${host.name} ${svc}`);
    assert.ok(u.environmentFiles.includes(ENV_FILE), `${host.name} ${svc} EnvironmentFiles: ${u.environmentFiles}`);
  }
  const fp = await appKeyFingerprint(fleet, host);
  assert.equal(fp.secret_key, keyFingerprint(generatedValue(engine, "SECRET_KEY")), `${host.name}: running key`);
  assert.equal((await fleet.http(host, "/health/")).status, 200, `${host.name}: health`);
}

describe("one host", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let engine: EngineModel;
  let config: Record<string, unknown>;

  before(async () => {
    fleet = await bootFleet(["solo"], log);
    host = fleet.hosts[0];
    engine = new EngineModel("dev", log);
    config = fleetConfig(fleet, [host]);
  });
  after(async () => {
    engine?.dispose();
    await fleet?.teardown();
  });

  it("first deploy: env file, drop-ins, healthy services on the generated key, Celery round trip", async () => {
    // A hand-made env file from the old procedure is already there: it must be kept as the backup.
    const handMade = "SECRET_KEY=old-hand-rotated-key\nDEBUG=False\n";
    assert.equal((await fleet.exec(host, `install -m 600 /dev/stdin ${ENV_FILE}`, { stdin: handMade })).code, 0);
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.deepEqual(
      r.ran.map((s) => `${s.op} ${s.name}`),
      ["create solo-rollout"],
    );
    await assertDeployed(fleet, engine, host);
    const bak = await hostFile(fleet, host, `${ENV_FILE}.bak`);
    assert.equal(bak.content, handMade);
    assert.equal(bak.mode, "600", "the backup holds secrets: it must be as private as the env file");
    for (const svc of APP.services) {
      const dropin = await hostFile(fleet, host, `/etc/systemd/system/${svc}.service.d/50-pms-secrets.conf`);
      assert.match(dropin.content, new RegExp(`^EnvironmentFile=${ENV_FILE}$`, "m"));
    }
    assert.ok(await celeryRoundTrip(fleet, host, "first-deploy"), "Celery task row written");
    // The running processes really hold the delivered values (systemd parsed the file as intended).
    const environ = await fleet.exec(
      host,
      "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value pms-backend)/environ",
    );
    assert.ok(environ.stdout.includes(`SECRET_KEY=${generatedValue(engine, "SECRET_KEY")}\n`));
    assert.ok(environ.stdout.includes(`DB_PASSWORD=pms-db-test-password\n`));
    // Progress was visible and nothing secret was printed.
    const out = r.ran[0].output ?? "";
    assert.match(out, /pms-rollout\[solo\] \+\d+\.\d{3}s restart: pms-backend active and stable/);
    assert.ok(!out.includes(generatedValue(engine, "SECRET_KEY")));
  });

  it("re-run with nothing changed: no command runs, no service restarts", async () => {
    const before = await servicesState(fleet, host);
    const r = await engine.up(config);
    assert.ok(r.ok);
    assert.deepEqual(r.ran, []);
    assert.deepEqual(r.sshSessions, {});
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("a connection change re-runs the command, which finds everything in place and restarts nothing", async () => {
    const before = await servicesState(fleet, host);
    const r = await engine.up({ ...config, sshTimeoutSeconds: "12" });
    assert.ok(r.ok, r.errors.join("\n"));
    assert.deepEqual(
      r.ran.map((s) => s.op),
      ["update"],
    );
    assert.match(r.ran[0].output ?? "", /already in place and verified; nothing to do/);
    assert.deepEqual(await servicesState(fleet, host), before);
    config = { ...config, sshTimeoutSeconds: "12" };
  });

  it("rotate SECRET_KEY by its keeper: new key running, DB works, other secrets unchanged, old sessions and tokens rejected", async () => {
    const login = await fleet.http(host, "/login/", { method: "POST" });
    const cookie =
      login.headers
        .getSetCookie()
        .map((c) => c.split(";")[0])
        .find((c) => c.startsWith("sessionid=")) ?? "";
    assert.match(cookie, /^sessionid=/);
    assert.equal((await fleet.http(host, "/me/", { headers: { cookie } })).status, 200);
    const token = (JSON.parse((await fleet.http(host, "/token/issue/", { method: "POST" })).body) as { token: string })
      .token;
    const oldKey = generatedValue(engine, "SECRET_KEY");
    const oldJwt = generatedValue(engine, "JWT_SIGNING_KEY");
    const before = await servicesState(fleet, host);

    config = { ...config, rotate: { SECRET_KEY: "2026-11-25" } };
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.deepEqual(
      r.ran.map((s) => `${s.op} ${s.name}`),
      ["replace solo-rollout"],
    );
    assert.notEqual(generatedValue(engine, "SECRET_KEY"), oldKey);
    assert.equal(generatedValue(engine, "JWT_SIGNING_KEY"), oldJwt);
    await assertDeployed(fleet, engine, host);
    const after = await servicesState(fleet, host);
    for (const svc of APP.services) assert.notEqual(after[svc].mainPid, before[svc].mainPid, `${svc} restarted`);
    assert.ok(await celeryRoundTrip(fleet, host, "after-secret-key-rotation"));
    // Documented behaviour without SECRET_KEY_FALLBACKS (README, RUNBOOK): everyone is logged out
    // and tokens signed with the old key stop verifying.
    assert.equal((await fleet.http(host, "/me/", { headers: { cookie } })).status, 401);
    assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: token })).status, 400);
    const fresh = (JSON.parse((await fleet.http(host, "/token/issue/", { method: "POST" })).body) as { token: string })
      .token;
    assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: fresh })).status, 200);
  });

  it("rotate everything by the global keeper", async () => {
    const oldKey = generatedValue(engine, "SECRET_KEY");
    const oldJwt = generatedValue(engine, "JWT_SIGNING_KEY");
    config = { ...config, rotation: "2026-12-01" };
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.notEqual(generatedValue(engine, "SECRET_KEY"), oldKey);
    assert.notEqual(generatedValue(engine, "JWT_SIGNING_KEY"), oldJwt);
    await assertDeployed(fleet, engine, host);
    const env = await hostFile(fleet, host, ENV_FILE);
    assert.ok(env.content.includes(`JWT_SIGNING_KEY='${generatedValue(engine, "JWT_SIGNING_KEY")}'\n`));
  });

  it("a rotation that breaks the app (wrong DB port) is rolled back: old env, healthy on the OLD key, run fails naming host, service and check; the fixed config then succeeds", async () => {
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const oldKey = generatedValue(engine, "SECRET_KEY");
    const broken = {
      ...config,
      rotate: { SECRET_KEY: "2026-12-02" },
      env: { ...(config.env as object), DB_PORT: "5999" },
    };
    const r = await engine.up(broken);
    assert.equal(r.ok, false);
    assert.match(
      r.errors[0],
      /pms-rollout FAILED host=solo service=pms-backend check=health-url: http:\/\/127\.0\.0\.1:8000\/health\/ answered 503/,
    );
    assert.match(r.errors[0], /previous env restored and services healthy on it/);
    assert.ok(!r.errors[0].includes(generatedValue(engine, "SECRET_KEY")), "the error must not carry the new key");
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, "previous env restored byte for byte");
    const units = await servicesState(fleet, host);
    for (const [svc, u] of Object.entries(units)) assert.equal(u.activeState, "active", svc);
    assert.equal(
      (await appKeyFingerprint(fleet, host)).secret_key,
      keyFingerprint(oldKey),
      "still running the OLD key",
    );
    assert.equal((await fleet.http(host, "/health/")).status, 200);

    // The engine did not believe the failed rollout happened: the next run retries it.
    config = { ...config, rotate: { SECRET_KEY: "2026-12-02" } };
    const fixed = await engine.up(config);
    assert.ok(fixed.ok, fixed.errors.join("\n"));
    assert.equal(fixed.ran.length, 1);
    await assertDeployed(fleet, engine, host);
  });

  it("a check command failure under the new env changes nothing on the host", async () => {
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const before = await servicesState(fleet, host);
    const r = await engine.up({ ...config, env: { ...(config.env as object), DEBUG: "maybe" } });
    assert.equal(r.ok, false);
    assert.match(
      r.errors[0],
      /pms-rollout FAILED host=solo service=pms-backend check=check-command: .*exited 1 under the new env.*nothing on the host was changed/s,
    );
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv);
    assert.deepEqual(await servicesState(fleet, host), before, "no restart");
    // Back to the good config: the engine retries the failed resource, finds it in place, restarts nothing.
    const back = await engine.up(config);
    assert.ok(back.ok, back.errors.join("\n"));
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("output relayed from the host names plain settings but never a secret value", async () => {
    const before = await servicesState(fleet, host);
    // With a rotation, so the check really runs (an unchanged host is left alone, check or not).
    const leaky = {
      ...config,
      rotate: { SECRET_KEY: "2026-12-05" },
      app: {
        ...(config.app as object),
        checkCommand: `sh -c 'echo "db=$DB_PASSWORD key=$SECRET_KEY host=$DB_HOST"; exit 3'`,
      },
    };
    const r = await engine.up(leaky);
    assert.equal(r.ok, false);
    assert.match(
      r.errors[0],
      /check=check-command: .*exited 3 under the new env: db=\[redacted\] key=\[redacted\] host=127\.0\.0\.1/s,
    );
    assert.ok(!r.errors[0].includes("pms-db-test-password"));
    assert.ok(!r.errors[0].includes(generatedValue(engine, "SECRET_KEY")));
    assert.deepEqual(await servicesState(fleet, host), before);
    const back = await engine.up(config);
    assert.ok(back.ok, back.errors.join("\n"));
  });

  it("a Celery task in flight during the rotation is not lost", async () => {
    const post = await fleet.http(host, "/slow-task/?id=busy-during-rotation&seconds=6", { method: "POST" });
    assert.equal(post.status, 202);
    await new Promise((res) => setTimeout(res, 1500)); // the worker has picked it up
    config = { ...config, rotate: { SECRET_KEY: "2026-12-03" } };
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.ok(await waitForTaskRow(fleet, host, "busy-during-rotation", 60000), "the busy task's row was written");
    await assertDeployed(fleet, engine, host);
  });

  it("a rollout killed at any point leaves the env file entirely old or entirely new, and the next run completes it", async () => {
    const seen = new Set<string>();
    for (const [i, delayMs] of [150, 400, 800, 1200, 2000, 3500].entries()) {
      const oldEnv = (await hostFile(fleet, host, ENV_FILE)).content;
      config = { ...config, rotate: { SECRET_KEY: `2026-12-1${i}` } };
      const running = engine.up(config);
      await new Promise((res) => setTimeout(res, delayMs));
      // The script records its PID in the host lock file; kill exactly that process, hard.
      const kill = await fleet.exec(
        host,
        'pid=$(cat /run/lock/pms-secrets.lock 2>/dev/null); [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; echo killed=$pid',
      );
      const r = await running;
      const newEnv = sentEnvFile(engine, host);
      const now = await hostFile(fleet, host, ENV_FILE);
      assert.ok(now.exists, "the env file must never be missing");
      assert.ok(now.content === oldEnv || now.content === newEnv, `partial env file after a kill at ${delayMs} ms`);
      assert.equal(now.mode, "600");
      seen.add(r.ok ? "completed" : now.content === oldEnv ? "killed-old" : "killed-new");
      log(`kill at ${delayMs} ms: ${kill.stdout.trim()} -> ${[...seen].join(",")}`);
      const retry = await engine.up(config);
      assert.ok(retry.ok, retry.errors.join("\n"));
      await assertDeployed(fleet, engine, host);
    }
    // The successful retries cleaned up whatever the killed runs left (temp env files, work dirs).
    const leftovers = await fleet.exec(
      host,
      `ls -a ${APP.dir} /var/lib/pms-secrets | grep -c -e '^\\.env\\.pms-new' -e '^rollout\\.' || true`,
    );
    assert.equal(leftovers.stdout.trim(), "0", "stale temp files holding secrets were left behind");
    log(`outcomes: ${[...seen].join(", ")}`);
    assert.ok(seen.size >= 2, `kills landed in only one phase: ${[...seen].join(",")}`);
  });

  it("forbidden values are refused before anything is sent to the host", async () => {
    const before = await servicesState(fleet, host);
    const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
    await assert.rejects(
      engine.up({ ...config, secrets: { DB_PASSWORD: "it's-quoted" } }),
      /secrets\.DB_PASSWORD: the value contains a single quote/,
    );
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("a non-root login works through sudo -n", async () => {
    config = {
      ...fleetConfig(fleet, [host], { user: "deploy" }),
      rotate: config.rotate,
      rotation: config.rotation,
      sshTimeoutSeconds: "12",
    };
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.deepEqual(
      r.ran.map((s) => s.op),
      ["update"],
      "a user change is a connection change: an update",
    );
    assert.match(r.ran[0].output ?? "", /already in place and verified/);
    config = { ...config, rotate: { SECRET_KEY: "2026-12-20" } };
    const rot = await engine.up(config);
    assert.ok(rot.ok, rot.errors.join("\n"));
    await assertDeployed(fleet, engine, host);
  });

  it("app.envFileGroup makes the env file and its backup 0640 root:<group>", async () => {
    config = { ...config, app: { ...(config.app as object), envFileGroup: "pms" } };
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    const env = await hostFile(fleet, host, ENV_FILE);
    assert.equal(env.mode, "640");
    assert.equal(env.owner, "root:pms");
    assert.equal(env.content, sentEnvFile(engine, host));
    const bak = await hostFile(fleet, host, `${ENV_FILE}.bak`);
    assert.equal(bak.mode, "600", "the backup keeps the previous file's mode");
    const other = await fleet.exec(host, `su -s /bin/sh -c 'cat ${ENV_FILE}' nobody`);
    assert.notEqual(other.code, 0, "a user outside the group cannot read the env file");
  });

  it("the whole stdin is the script followed by the env file", () => {
    const stdin = engine.state.get("solo-rollout")?.inputs.stdin;
    assert.ok(typeof stdin === "string" && stdin.startsWith(ROLLOUT_SCRIPT));
  });
});

describe("three hosts", { skip }, () => {
  let fleet: TestFleet;
  let engine: EngineModel;
  let config: Record<string, unknown>;

  before(async () => {
    fleet = await bootFleet(["web1", "web2", "web3"], log);
    engine = new EngineModel("prod", log);
    config = fleetConfig(fleet, fleet.hosts);
  });
  after(async () => {
    engine?.dispose();
    await fleet?.teardown();
  });

  it("first deploy to three hosts, one after another, one SSH session each", async () => {
    const r = await engine.up(config);
    assert.ok(r.ok, r.errors.join("\n"));
    assert.deepEqual(
      r.ran.map((s) => s.name),
      ["web1-rollout", "web2-rollout", "web3-rollout"],
    );
    assert.deepEqual(Object.values(r.sshSessions), [1, 1, 1]);
    for (const h of fleet.hosts) await assertDeployed(fleet, engine, h);
  });

  it("an unreachable host: clear error, later hosts untouched, retried on the next run", async () => {
    const [web1, web2, web3] = fleet.hosts;
    const web3Before = await servicesState(fleet, web3);
    const web3Env = (await hostFile(fleet, web3, ENV_FILE)).content;
    config = { ...config, rotate: { SECRET_KEY: "2026-11-25" } };
    // web2's sshd is "down": its address points at a loopback port nothing listens on.
    const down = fleetConfig(fleet, fleet.hosts, {
      portOf: (h) => (h === web2 ? 1 : h.sshPort),
      overrides: { rotate: config.rotate },
    });
    const r = await engine.up(down);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.steps.filter((s) => s.type === "command:remote:Command").map((s) => `${s.op} ${s.name} ${s.ok}`),
      ["replace web1-rollout true", "replace web2-rollout false", "skipped web3-rollout true"],
    );
    assert.match(r.errors[0], /web2-rollout/);
    assert.match(r.errors[0], /Connection refused|connect to host/);
    await assertDeployed(fleet, engine, web1);
    assert.equal((await hostFile(fleet, web3, ENV_FILE)).content, web3Env, "web3 untouched");
    assert.deepEqual(await servicesState(fleet, web3), web3Before, "web3 not restarted");

    const again = await engine.up(config);
    assert.ok(again.ok, again.errors.join("\n"));
    assert.deepEqual(
      again.ran.map((s) => s.name),
      ["web2-rollout", "web3-rollout"],
    );
    for (const h of fleet.hosts) await assertDeployed(fleet, engine, h);
  });

  it("a host presenting a different key than the pinned hostKey is refused before anything runs", async () => {
    const [web1, web2] = fleet.hosts;
    const before = await servicesState(fleet, web1);
    const envBefore = (await hostFile(fleet, web1, ENV_FILE)).content;
    // web1's pinned key is (wrongly) web2's: the connection must fail the host key check.
    const spoofed = fleetConfig(fleet, fleet.hosts, { overrides: { rotate: config.rotate } });
    (spoofed.hosts as Array<{ hostKey: string }>)[0].hostKey = web2.hostKey;
    const r = await engine.up(spoofed);
    assert.equal(r.ok, false);
    assert.match(r.errors[0], /web1-rollout[\s\S]*Host key verification failed/);
    assert.equal((await hostFile(fleet, web1, ENV_FILE)).content, envBefore);
    assert.deepEqual(await servicesState(fleet, web1), before);
    // The stack's real config is applied again on the next run.
    const back = await engine.up(config);
    assert.ok(back.ok, back.errors.join("\n"));
  });

  it("re-run with nothing changed touches no host", async () => {
    const before = await Promise.all(fleet.hosts.map((h) => servicesState(fleet, h)));
    const r = await engine.up(config);
    assert.deepEqual(r.ran, []);
    assert.deepEqual(await Promise.all(fleet.hosts.map((h) => servicesState(fleet, h))), before);
  });
});
