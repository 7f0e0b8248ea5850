/**
 * Rotations end to end on real hosts through the real `pulumi` CLI (pulumi-cli.ts): the
 * program runs unchanged from a real stack file, the engine drives the command and random
 * plugins over real SSH, Moto stands in for Secrets Manager; every assertion reads the host's
 * real state, and every line the CLI printed is scanned for secret values.
 *
 *   node --import tsx --test test/host/rotation.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { hostSuite } from "./suite";
import { assertOk, changesOf, CliResult, PulumiStack, ran } from "./pulumi-cli";
import { envFingerprint } from "../../components/env-file";
import {
  appKeyFingerprint,
  celeryRoundTrip,
  ENV_FILE,
  envDiff,
  fleetConfig,
  hostFile,
  keyFingerprint,
  servicesState,
  sshLogins,
  unavailable,
  waitForTaskRow,
} from "./scenario";
import { APP, bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** Asserts a host runs exactly what the stack's state says it was sent, healthy, on the state's key. */
async function assertDeployed(fleet: TestFleet, stack: PulumiStack, host: TestHost): Promise<void> {
  const env = await hostFile(fleet, host, ENV_FILE);
  assert.deepEqual(envDiff(env.content, stack.sentEnvFile(host.name)), [], `${host.name}: env file`);
  assert.equal(env.mode, "600");
  assert.equal(env.owner, "root:root");
  const units = await servicesState(fleet, host);
  for (const [svc, u] of Object.entries(units)) {
    assert.equal(u.activeState, "active", `${host.name} ${svc}`);
    assert.ok(u.environmentFiles.includes(ENV_FILE), `${host.name} ${svc} EnvironmentFiles: ${u.environmentFiles}`);
  }
  const fp = await appKeyFingerprint(fleet, host);
  assert.equal(fp.secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")), `${host.name}: running key`);
  assert.equal((await fleet.http(host, "/health/")).status, 200, `${host.name}: health`);
}

/** The rollout's root-only backup generations on `host` (newest last), with mode and content. */
async function backups(
  fleet: TestFleet,
  host: TestHost,
): Promise<Array<{ content: string; mode: string; owner: string }>> {
  const list = await fleet.exec(
    host,
    "find /var/lib/pms-secrets/backups -type f -printf '%T@ %p\\n' | sort -n | cut -d' ' -f2",
  );
  const files = list.stdout.split("\n").filter((f) => f !== "");
  return Promise.all(files.map((f) => hostFile(fleet, host, f)));
}

describe("one host, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;

  const up = async (c: Record<string, unknown>): Promise<CliResult> => {
    await stack.setConfig(c);
    return stack.up();
  };

  before(async () => {
    fleet = await bootFleet(["solo"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log });
    config = fleetConfig(fleet, [host]);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("first deploy: env file, drop-ins, healthy services on the generated key, Celery round trip, one SSH session", async () => {
    // A hand-made env file from the old procedure is already there: it must be kept as the backup.
    const handMade = "SECRET_KEY=old-hand-rotated-key\nDEBUG=False\n";
    assert.equal((await fleet.exec(host, `install -D -m 600 /dev/stdin ${ENV_FILE}`, { stdin: handMade })).code, 0);
    const logins = await sshLogins(fleet, host);
    const r = await up(config);
    assertOk(r);
    assert.equal((await sshLogins(fleet, host)) - logins - 1, 1, "one SSH session for the rollout");
    assert.deepEqual(ran(r), ["create solo-rollout"]);
    assert.match(r.output, /Updating \(dev\)/);
    assert.match(r.output, /Resources:\n\s+\+ 10 created/);
    await assertDeployed(fleet, stack, host);
    const saved = await backups(fleet, host);
    assert.ok(
      saved.some((b) => b.content === handMade),
      "the hand-made file is kept as a backup",
    );
    for (const b of saved) assert.deepEqual([b.mode, b.owner], ["600", "root:root"], "backups hold secrets: root-only");
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
    assert.ok(environ.stdout.includes(`SECRET_KEY=${stack.generatedValue("SECRET_KEY")}\n`));
    assert.ok(environ.stdout.includes(`DB_PASSWORD=pms-db-test-password\n`));
    // Progress from the host was visible in the CLI's output, and nothing secret was.
    assert.match(r.output, /pms-rollout\[solo\] \+\d+\.\d{3}s restart: pms-backend active and stable/);
    assert.deepEqual(stack.leaks(), []);
    // The Secrets Manager document (in Moto) holds the same values the host got.
    const outputs = await stack.stackOutput();
    assert.match(String(outputs.secretArn), /^arn:aws:secretsmanager:eu-west-1:\d{12}:secret:pms-backend\/dev-/);
  });

  it("re-run with nothing changed: no command runs, no SSH session, no service restarts", async () => {
    const before = await servicesState(fleet, host);
    const logins = await sshLogins(fleet, host);
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), []);
    assert.deepEqual(changesOf(r), { same: 10 });
    assert.equal((await sshLogins(fleet, host)) - logins - 1, 0, "no SSH session");
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("a connection change re-runs the command (update), which finds everything in place and restarts nothing", async () => {
    const before = await servicesState(fleet, host);
    config = { ...config, sshTimeoutSeconds: 12 };
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), ["update solo-rollout"]);
    assert.match(r.output, /already in place and proven in the running processes; nothing to do/);
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  /** Logs in and issues a signed token: what a rotation may or may not invalidate. */
  const signedIn = async (): Promise<{ cookie: string; token: string }> => {
    const login = await fleet.http(host, "/login/", { method: "POST" });
    const cookie =
      login.headers
        .getSetCookie()
        .map((c) => c.split(";")[0])
        .find((c) => c.startsWith("sessionid=")) ?? "";
    assert.match(cookie, /^sessionid=/);
    assert.equal((await fleet.http(host, "/me/", { headers: { cookie } })).status, 200);
    const issued = await fleet.http(host, "/token/issue/", { method: "POST" });
    return { cookie, token: (JSON.parse(issued.body) as { token: string }).token };
  };
  const stillValid = async (s: { cookie: string; token: string }): Promise<[number, number]> => [
    (await fleet.http(host, "/me/", { headers: { cookie: s.cookie } })).status,
    (await fleet.http(host, "/token/verify/", { method: "POST", body: s.token })).status,
  ];

  it("rotate SECRET_KEY by its keeper (routine): new key running, DB works, other secrets unchanged, the previous key kept as a fallback so sessions and tokens survive", async () => {
    const session = await signedIn();
    const oldKey = stack.generatedValue("SECRET_KEY");
    const oldJwt = stack.generatedValue("JWT_SIGNING_KEY");
    const before = await servicesState(fleet, host);

    config = { ...config, rotate: { SECRET_KEY: "2026-11-25" } };
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), ["create-replacement solo-rollout"]);
    assert.notEqual(stack.generatedValue("SECRET_KEY"), oldKey);
    assert.equal(stack.generatedValue("JWT_SIGNING_KEY"), oldJwt);
    await assertDeployed(fleet, stack, host);
    const after = await servicesState(fleet, host);
    for (const svc of APP.services) assert.notEqual(after[svc].mainPid, before[svc].mainPid, `${svc} restarted`);
    assert.ok(await celeryRoundTrip(fleet, host, "after-secret-key-rotation"));
    assert.deepEqual((await appKeyFingerprint(fleet, host)).fallbacks, [keyFingerprint(oldKey)]);
    assert.deepEqual(await stillValid(session), [200, 200], "signed with the previous key, verified by the fallback");
    const fresh = await signedIn();
    assert.deepEqual(await stillValid(fresh), [200, 200]);
  });

  it("an emergency rotation (keeper `emergency-...`) retires the previous key: sessions and tokens signed with it are rejected", async () => {
    const session = await signedIn();
    config = { ...config, rotate: { SECRET_KEY: "emergency-2026-11-26" } };
    const r = await up(config);
    assertOk(r);
    await assertDeployed(fleet, stack, host);
    assert.deepEqual((await appKeyFingerprint(fleet, host)).fallbacks, [], "no fallback kept");
    assert.deepEqual(await stillValid(session), [401, 400]);
    assert.deepEqual(await stillValid(await signedIn()), [200, 200]);
    config = { ...config, rotate: { SECRET_KEY: "2026-11-26" } };
    assertOk(await up(config));
  });

  it("rotate everything by the global keeper", async () => {
    const oldKey = stack.generatedValue("SECRET_KEY");
    const oldJwt = stack.generatedValue("JWT_SIGNING_KEY");
    config = { ...config, rotation: "2026-12-01" };
    const r = await up(config);
    assertOk(r);
    assert.notEqual(stack.generatedValue("SECRET_KEY"), oldKey);
    assert.notEqual(stack.generatedValue("JWT_SIGNING_KEY"), oldJwt);
    await assertDeployed(fleet, stack, host);
    const env = await hostFile(fleet, host, ENV_FILE);
    assert.ok(env.content.includes(`JWT_SIGNING_KEY='${stack.generatedValue("JWT_SIGNING_KEY")}'\n`));
  });

  it("a rotation that breaks the app (wrong DB port) is rolled back: old env, healthy on the OLD key, the run fails naming host, service and check; the state still describes what the host runs; the fixed config then succeeds", async () => {
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const oldKey = stack.generatedValue("SECRET_KEY");
    const broken = {
      ...config,
      rotate: { SECRET_KEY: "2026-12-02" },
      env: { ...(config.env as object), DB_PORT: "5999" },
    };
    const r = await up(broken);
    assert.notEqual(r.code, 0);
    assert.deepEqual(ran(r), ["create-replacement solo-rollout FAILED"]);
    assert.match(
      r.output,
      /pms-rollout FAILED host=solo service=pms-backend check=health-url: http:\/\/127\.0\.0\.1:8000\/health\/ answered 503/,
    );
    assert.match(r.output, /previous env restored and services healthy on it/);
    const failedKey = stack.generatedValue("SECRET_KEY");
    assert.notEqual(failedKey, oldKey, "the password was replaced before the rollout failed");
    assert.ok(!r.output.includes(failedKey), "the output must not carry the new key");
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, "previous env restored byte for byte");
    // The engine kept the rollout's OLD state (the provider returns no partial state): state and host agree.
    assert.deepEqual(
      envDiff(goodEnv, stack.sentEnvFile(host.name)),
      [],
      "the state still says the host has the previous env",
    );
    // ... and so do the stack's outputs: a failed host must not be reported as holding the new env.
    const hosts = (await stack.stackOutput()).hosts as Record<string, { envFingerprint: string }>;
    assert.equal(
      hosts.solo.envFingerprint,
      envFingerprint(String(stack.resource("env-fingerprint-key")?.outputs.result), stack.sentEnvFile(host.name)),
      "hosts.solo.envFingerprint after the failure: the env the host was last proven to run",
    );
    const units = await servicesState(fleet, host);
    for (const [svc, u] of Object.entries(units)) assert.equal(u.activeState, "active", svc);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(oldKey), "still on the OLD key");
    assert.equal((await fleet.http(host, "/health/")).status, 200);

    // The fixed config still differs from the rollout's state: the next run delivers it.
    config = { ...config, rotate: { SECRET_KEY: "2026-12-02" } };
    const fixed = await up(config);
    assertOk(fixed);
    assert.deepEqual(ran(fixed), ["create-replacement solo-rollout"]);
    assert.equal(
      stack.generatedValue("SECRET_KEY"),
      failedKey,
      "the key generated by the failed run is the one delivered",
    );
    await assertDeployed(fleet, stack, host);
  });

  it("failure, rollback, then the operator reverts the config: a reverted rotation is a new rotation; a reverted plain change re-runs nothing because the host is on what the state says", async () => {
    // 1. A rotation fails (bad DB port), the operator reverts both the keeper and the port.
    const keeperBefore = config.rotate;
    const keyBefore = stack.generatedValue("SECRET_KEY");
    const failed = await up({
      ...config,
      rotate: { SECRET_KEY: "2026-12-04" },
      env: { ...(config.env as object), DB_PORT: "5999" },
    });
    assert.notEqual(failed.code, 0);
    const keyOfFailedRun = stack.generatedValue("SECRET_KEY");
    assert.deepEqual(config.rotate, keeperBefore);
    const reverted = await up(config);
    assertOk(reverted);
    // The keeper went back, but RandomPassword cannot go back: a third value is drawn and delivered.
    const keyNow = stack.generatedValue("SECRET_KEY");
    assert.notEqual(keyNow, keyBefore);
    assert.notEqual(keyNow, keyOfFailedRun);
    assert.deepEqual(ran(reverted), ["create-replacement solo-rollout"]);
    await assertDeployed(fleet, stack, host);

    // 2. A plain change breaks the app and is rolled back, then reverted: the host was put back
    // and the state never moved, so nothing needs to run (and nothing does).
    const bad = await up({ ...config, env: { ...(config.env as object), DB_PORT: "5999" } });
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /previous env restored/);
    assert.deepEqual(envDiff((await hostFile(fleet, host, ENV_FILE)).content, stack.sentEnvFile(host.name)), []);
    const back = await up(config);
    assertOk(back);
    assert.deepEqual(ran(back), []);
    await assertDeployed(fleet, stack, host);
  });

  it("crash loops are still caught with one shared stability window: a Celery worker that exits at start, a gunicorn that dies before it binds; each rolled back, naming its service", async () => {
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      // A typo in the broker URL: Django's checks pass (they never load a Celery transport), the
      // worker exits at start and systemd restarts it (Restart=on-failure, RestartSec=1s).
      [
        "celery-pms",
        { CELERY_BROKER_URL: "nosuchtransport://127.0.0.1:6379/0" },
        /pms-rollout FAILED host=solo service=celery-pms check=stability: (systemd restarted it within \d+s \(restart loop\)|unit is (activating|failed)\/)/,
      ],
      // gunicorn reads WEB_CONCURRENCY when it loads its config: it exits before binding.
      [
        "pms-backend",
        { WEB_CONCURRENCY: "two" },
        /pms-rollout FAILED host=solo service=pms-backend check=stability: (systemd restarted it while its health URLs were checked \(restart loop\)|unit is (activating|failed)\/)/,
      ],
    ];
    for (const [svc, env, failure] of cases) {
      const r = await up({ ...config, env: { ...(config.env as object), ...env } });
      assert.notEqual(r.code, 0, `${svc}: the run must fail`);
      assert.match(r.output, failure, r.output);
      assert.match(r.output, /previous env restored and services healthy on it/);
      if (svc === "celery-pms") {
        // gunicorn served before Celery was touched, and both were watched in one window.
        assert.match(
          r.output,
          /restart: pms-backend is up and its health URLs answered 2xx[\s\S]*restart: celery-pms[\s\S]*restart: watching pms-backend celery-pms together for \d+s/,
        );
      } else {
        assert.doesNotMatch(r.output, /restart: celery-pms\s*$/m, "Celery is not touched when gunicorn fails");
      }
      assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, `${svc}: previous env restored`);
      const units = await servicesState(fleet, host);
      for (const [name, u] of Object.entries(units)) assert.equal(u.activeState, "active", `${svc} case: ${name}`);
      assert.equal((await fleet.http(host, "/health/")).status, 200);
    }
    await assertDeployed(fleet, stack, host);
  });

  it("a check command failure under the new env changes nothing on the host", async () => {
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const before = await servicesState(fleet, host);
    const r = await up({
      ...config,
      app: {
        ...(config.app as object),
        checkCommand: `sh -c 'echo "check: FEATURE_X=$FEATURE_X is not supported"; exit 1'`,
      },
      env: { ...(config.env as object), FEATURE_X: "on" },
    });
    assert.notEqual(r.code, 0);
    assert.match(
      r.output,
      /pms-rollout FAILED host=solo service=pms-backend check=check-command: the check command exited 1 under the new env.*nothing on the host was changed/,
    );
    assert.match(r.output, /check: FEATURE_X=on is not supported/, "the check's own output is relayed");
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv);
    assert.deepEqual(await servicesState(fleet, host), before, "no restart");
    const back = await up(config);
    assertOk(back);
    assert.deepEqual(ran(back), [], "the failed run left the state as it was: nothing to redo");
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("output relayed from the host names plain settings but never a secret value; the CLI's whole output of the failed up is clean", async () => {
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
    const r = await up(leaky);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /check=check-command: the check command exited 3 under the new env/);
    assert.match(r.output, /check output: db=\[redacted\] key=\[redacted\] host=127\.0\.0\.1/);
    assert.ok(!r.output.includes("pms-db-test-password"));
    assert.ok(!r.output.includes(stack.generatedValue("SECRET_KEY")));
    assert.deepEqual(stack.leaks(), []);
    assert.deepEqual(await servicesState(fleet, host), before);
    config = { ...config, rotate: { SECRET_KEY: "2026-12-05" } };
    const back = await up(config);
    assertOk(back);
    await assertDeployed(fleet, stack, host);
  });

  it("a Celery task in flight during the rotation is not lost", async () => {
    const post = await fleet.http(host, "/slow-task/?id=busy-during-rotation&seconds=6", { method: "POST" });
    assert.equal(post.status, 202);
    await new Promise((res) => setTimeout(res, 1500)); // the worker has picked it up
    config = { ...config, rotate: { SECRET_KEY: "2026-12-03" } };
    const r = await up(config);
    assertOk(r);
    assert.ok(await waitForTaskRow(fleet, host, "busy-during-rotation", 60000), "the busy task's row was written");
    await assertDeployed(fleet, stack, host);
  });

  it("a rollout killed at any point leaves the env file entirely old or entirely new, and the next run completes it", async () => {
    const seen = new Set<string>();
    // Delays after the worker takes the host lock: 0 lands before anything is changed (the
    // check command alone takes longer), the later ones during and after the install.
    for (const [i, delayMs] of [0, 1200, 2500, 4000].entries()) {
      const oldEnv = (await hostFile(fleet, host, ENV_FILE)).content;
      // The PID file outlives a run: remember the last one so the watcher waits for a new worker.
      const previous = (
        await fleet.exec(host, "cat /var/lib/pms-secrets/rollout.pid 2>/dev/null || true")
      ).stdout.trim();
      config = { ...config, rotate: { SECRET_KEY: `2026-12-1${i}` } };
      await stack.setConfig(config);
      // Watch on the host itself (no SSH round trip per poll): once a new worker holds the lock,
      // let it run `delayMs` more, then kill exactly that process, hard.
      const killing = fleet.exec(
        host,
        `prev='${/^\d*$/.test(previous) ? previous : ""}'; for _ in $(seq 1 3000); do ` +
          `pid=$(cat /var/lib/pms-secrets/rollout.pid 2>/dev/null || true); ` +
          `if [ -n "$pid" ] && [ "$pid" != "$prev" ] && kill -0 "$pid" 2>/dev/null; then ` +
          `sleep ${(delayMs / 1000).toFixed(3)}; kill -KILL "$pid" 2>/dev/null; echo "killed=$pid"; exit 0; fi; ` +
          `sleep 0.05; done; echo never-started`,
        { timeoutMs: 180_000 },
      );
      const running = stack.up();
      const kill = await killing;
      assert.match(kill.stdout, /killed=\d+/, "the rollout's worker never started");
      const r = await running;
      const now = await hostFile(fleet, host, ENV_FILE);
      assert.ok(now.exists, "the env file must never be missing");
      assert.equal(now.mode, "600");
      const newEnv = r.code === 0 ? stack.sentEnvFile(host.name) : undefined;
      const outcome = r.code === 0 ? "completed" : now.content === oldEnv ? "killed-old" : "killed-new";
      if (outcome === "killed-new") {
        // Entirely new: the env file the next (same-config) run will send, byte for byte, once it exists.
        assert.ok(now.content.startsWith("# Managed by"), "the new file is whole");
      } else if (newEnv !== undefined) {
        assert.deepEqual(envDiff(now.content, newEnv), []);
      } else {
        assert.equal(now.content, oldEnv, `partial env file after a kill at ${delayMs} ms`);
      }
      seen.add(outcome);
      log(`kill at ${delayMs} ms: ${kill.stdout.trim()} -> ${outcome}`);
      const retry = await stack.up();
      assertOk(retry);
      await assertDeployed(fleet, stack, host);
    }
    // The successful retries cleaned up whatever the killed runs left (temp env files, work dirs).
    const leftovers = await fleet.exec(
      host,
      `{ ls -a ${APP.dir} | grep '^\\.pms-secrets\\.'; find /var/lib/pms-secrets/runs -name '*.env'; } | grep -c . || true`,
    );
    assert.equal(leftovers.stdout.trim(), "0", "stale temp files holding secrets were left behind");
    log(`outcomes: ${[...seen].join(", ")}`);
    assert.ok(seen.size >= 2, `kills landed in only one phase: ${[...seen].join(",")}`);
  });

  it("forbidden values are refused before anything is sent to the host, and the value is not printed", async () => {
    const before = await servicesState(fleet, host);
    const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
    const r = await up({ ...config, secrets: { ...(config.secrets as object), DB_PASSWORD: "it's-quoted-pw" } });
    assert.notEqual(r.code, 0);
    assert.match(r.output, /secrets\.DB_PASSWORD: the value contains a single quote/);
    assert.deepEqual(ran(r), []);
    assert.deepEqual(stack.leaks(), []);
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("a non-root login works through sudo -n", async () => {
    config = {
      ...fleetConfig(fleet, [host], { user: "deploy" }),
      rotate: config.rotate,
      rotation: config.rotation,
      sshTimeoutSeconds: 12,
    };
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), ["update solo-rollout"], "a user change is a connection change: an update");
    assert.match(r.output, /already in place and proven in the running processes/);
    config = { ...config, rotate: { SECRET_KEY: "2026-12-20" } };
    const rot = await up(config);
    assertOk(rot);
    await assertDeployed(fleet, stack, host);
  });

  it("app.envFileGroup makes the env file and its backup 0640 root:<group>", async () => {
    config = { ...config, app: { ...(config.app as object), envFileGroup: "pms" } };
    const r = await up(config);
    assertOk(r);
    const env = await hostFile(fleet, host, ENV_FILE);
    assert.equal(env.mode, "640");
    assert.equal(env.owner, "root:pms");
    assert.deepEqual(envDiff(env.content, stack.sentEnvFile(host.name)), []);
    const saved = await backups(fleet, host);
    assert.equal(saved[saved.length - 1].mode, "600", "backups stay root-only whatever the env file's group");
    const other = await fleet.exec(host, `su -s /bin/sh -c 'cat ${ENV_FILE}' nobody`);
    assert.notEqual(other.code, 0, "a user outside the group cannot read the env file");
  });

  it("the whole stdin is the script followed by the env file, and no recorded CLI output holds a secret", () => {
    const stdin = stack.resource("solo-rollout", "command:remote:Command")?.inputs.stdin;
    assert.ok(typeof stdin === "string" && stdin.startsWith(stack.rolloutScript));
    assert.ok(stack.secrets.length >= 8, `the scan knows the stack's secrets (${stack.secrets.length})`);
    assert.deepEqual(stack.leaks(), []);
  });
});

describe("three hosts, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let stack: PulumiStack;
  let config: Record<string, unknown>;

  const up = async (c: Record<string, unknown>): Promise<CliResult> => {
    await stack.setConfig(c);
    return stack.up();
  };

  before(async () => {
    fleet = await bootFleet(["web1", "web2", "web3"], log, { httpHost: "public" });
    stack = await PulumiStack.create({ stack: "prod", log });
    config = fleetConfig(fleet, fleet.hosts);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("first deploy to three hosts, one after another in each of the two SECRET_KEY phases, one SSH session per phase", async () => {
    const logins = await Promise.all(fleet.hosts.map((h) => sshLogins(fleet, h)));
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), [
      "create web1-accept",
      "create web2-accept",
      "create web3-accept",
      "create web1-rollout",
      "create web2-rollout",
      "create web3-rollout",
    ]);
    // No host had a key to keep signing with: phase 1 changed nothing, phase 2 installed the env.
    const nothingToKeep = r.output
      .split("\n")
      .filter((l) => /no current SECRET_KEY on this host to keep signing with; nothing changed/.test(l));
    // The CLI repeats a resource's last status line when it completes: count hosts, not lines.
    const hostsWithNothingToKeep = new Set(nothingToKeep.map((l) => /pms-rollout\[(\w+)\]/.exec(l)?.[1]));
    assert.deepEqual([...hostsWithNothingToKeep].sort(), ["web1", "web2", "web3"], nothingToKeep.join("\n"));
    const now = await Promise.all(fleet.hosts.map((h) => sshLogins(fleet, h)));
    assert.deepEqual(
      now.map((n, i) => n - logins[i] - 1),
      [2, 2, 2],
    );
    for (const h of fleet.hosts) await assertDeployed(fleet, stack, h);
  });

  it("an unreachable host in phase 1: clear error, no host signs with the new key, later hosts untouched, retried on the next run", async () => {
    const [web1, , web3] = fleet.hosts;
    const keyBefore = keyFingerprint(stack.generatedValue("SECRET_KEY"));
    const web3Before = await servicesState(fleet, web3);
    const web3Env = (await hostFile(fleet, web3, ENV_FILE)).content;
    config = { ...config, rotate: { SECRET_KEY: "2026-11-25" } };
    // web2's sshd is "down": its address points at a loopback port nothing listens on.
    const down = fleetConfig(fleet, fleet.hosts, {
      portOf: (h) => (h.name === "web2" ? 1 : h.sshPort),
      overrides: { rotate: config.rotate },
    });
    const r = await up(down);
    assert.notEqual(r.code, 0);
    assert.deepEqual(ran(r), ["create-replacement web1-accept", "create-replacement web2-accept FAILED"]);
    assert.match(r.output, /web2-accept[\s\S]*connection refused/);
    const web1Key = await appKeyFingerprint(fleet, web1);
    assert.equal(web1Key.secret_key, keyBefore, "web1 accepts the new key but still signs with the old one");
    assert.equal(web1Key.fallbacks[0], keyFingerprint(stack.generatedValue("SECRET_KEY")), "web1 accepts the new key");
    assert.equal((await fleet.http(web1, "/health/")).status, 200);
    assert.equal((await hostFile(fleet, web3, ENV_FILE)).content, web3Env, "web3 untouched");
    assert.deepEqual(await servicesState(fleet, web3), web3Before, "web3 not restarted");

    const again = await up(config);
    assertOk(again);
    assert.deepEqual(ran(again), [
      "create-replacement web2-accept",
      "create-replacement web3-accept",
      "create-replacement web1-rollout",
      "create-replacement web2-rollout",
      "create-replacement web3-rollout",
    ]);
    for (const h of fleet.hosts) await assertDeployed(fleet, stack, h);
  });

  it("a host presenting a different key than the pinned hostKey is refused before anything runs", async () => {
    const [web1, web2] = fleet.hosts;
    const before = await servicesState(fleet, web1);
    const envBefore = (await hostFile(fleet, web1, ENV_FILE)).content;
    // web1's pinned key is (wrongly) web2's: the connection must fail the host key check.
    const spoofed = fleetConfig(fleet, fleet.hosts, { overrides: { rotate: config.rotate } });
    (spoofed.hosts as Array<{ hostKey: string }>)[0].hostKey = web2.hostKey;
    const r = await up(spoofed);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /web1-accept[\s\S]*ssh: handshake failed: ssh: host key mismatch/);
    assert.equal((await hostFile(fleet, web1, ENV_FILE)).content, envBefore);
    assert.deepEqual(await servicesState(fleet, web1), before);
    const back = await up(config);
    assertOk(back);
  });

  it("re-run with nothing changed touches no host; no recorded CLI output holds a secret", async () => {
    const before = await Promise.all(fleet.hosts.map((h) => servicesState(fleet, h)));
    const r = await up(config);
    assertOk(r);
    assert.deepEqual(ran(r), []);
    assert.deepEqual(await Promise.all(fleet.hosts.map((h) => servicesState(fleet, h))), before);
    assert.deepEqual(stack.leaks(), []);
  });
});
