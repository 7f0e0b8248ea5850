/**
 * Graceful SECRET_KEY rotation, retiring fallbacks, emergency rotation and adoption (issue 10) on
 * booted hosts: the program's own rollout command (rolloutCommand + the mode arguments from
 * secretKeyRolloutArgs) over real ssh with the program's stdin, and every verdict from the running
 * app's own endpoints (Django's session, password-reset and signing code with the SECRET_KEY and
 * SECRET_KEY_FALLBACKS it really has) and from the host's files and /proc.
 *
 *   node --import tsx --test test/host/graceful.test.ts        (root, Linux)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { hostSuite } from "./suite";
import { secretKeyRolloutArgs } from "../../components/secret-key-rotation";
import { commandSteps, type CliResult, PulumiStack } from "./pulumi-cli";
import { ENV_FILE, envFile, leaked, randomValue, rollout, runningKeys, sh } from "./safety-host";
import { fleetConfig, unavailable } from "./scenario";
import {
  bootFleet,
  hostTestsUnavailableReason,
  LEGACY_ENV,
  PRESET_ENV,
  PUBLIC_HOST,
  type TestFleet,
  type TestHost,
  verboseLog,
} from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

const ROUTINE = secretKeyRolloutArgs({ fallbacks: 1, emergency: false });
const RETIRE = secretKeyRolloutArgs({ fallbacks: 0, emergency: false });
const KEEP_TWO = secretKeyRolloutArgs({ fallbacks: 2, emergency: false });
const EMERGENCY = secretKeyRolloutArgs({ fallbacks: 1, emergency: true, emergencyKeeper: "rotate.SECRET_KEY" });

/** The app's own fingerprint of a key (views.fingerprint): sha256, first 16 hex. */
const fp = (key: string): string => createHash("sha256").update(key).digest("hex").slice(0, 16);

/** What a user holds from before a rotation: a session cookie, a reset token, a signed value. */
interface Credentials {
  cookie: string;
  resetToken: string;
  signed: string;
}

/** The three verdicts of the app on a user's credentials. */
interface Verdicts {
  session: number;
  reset: number;
  signed: number;
}

/** The Host header the app accepts on a host: the public name, or loopback when the stack says so. */
interface App {
  fleet: TestFleet;
  hostHeader?: string;
}

const post = (app: App, host: TestHost, path: string, body = "") =>
  app.fleet.http(host, path, { method: "POST", body, host: app.hostHeader });

async function credentials(app: App, host: TestHost): Promise<Credentials> {
  const login = await post(app, host, "/login/");
  assert.equal(login.status, 200, login.body);
  const cookie = /sessionid=([^;]+)/.exec(login.headers.get("set-cookie") ?? "")?.[1];
  assert.ok(cookie, "login sets a session cookie");
  const reset = await post(app, host, "/reset-token/issue/");
  const signed = await post(app, host, "/token/issue/");
  assert.equal(reset.status, 200, reset.body);
  assert.equal(signed.status, 200, signed.body);
  return {
    cookie,
    resetToken: (JSON.parse(reset.body) as { token: string }).token,
    signed: (JSON.parse(signed.body) as { token: string }).token,
  };
}

async function verdicts(app: App, host: TestHost, c: Credentials): Promise<Verdicts> {
  const me = await app.fleet.http(host, "/me/", { host: app.hostHeader, headers: { cookie: `sessionid=${c.cookie}` } });
  const reset = await post(app, host, "/reset-token/check/", c.resetToken);
  const signed = await post(app, host, "/token/verify/", c.signed);
  return { session: me.status, reset: reset.status, signed: signed.status };
}

const ACCEPTED: Verdicts = { session: 200, reset: 200, signed: 200 };
const REJECTED: Verdicts = { session: 401, reset: 400, signed: 400 };

async function keysOfApp(app: App, host: TestHost): Promise<{ secret_key: string; fallbacks: string[] }> {
  const r = await app.fleet.http(host, "/key-fingerprint/", { host: app.hostHeader });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as { secret_key: string; fallbacks: string[] };
}

describe("SECRET_KEY rotation: graceful, retired, emergency, adoption", { skip }, () => {
  let fleet: TestFleet;
  let app: App;
  const byName = (name: string): TestHost => {
    const h = fleet.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  };

  async function mainPids(host: TestHost): Promise<string> {
    return sh(fleet, host, "systemctl show -p MainPID --value pms-backend.service celery-pms.service");
  }

  /** Every file on the host (as root; not /proc, /sys, /dev) that contains `value`. */
  async function filesHolding(host: TestHost, value: string): Promise<string[]> {
    const r = await fleet.exec(
      host,
      "grep -rlF -f /dev/stdin --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev / 2>/dev/null; true",
      { stdin: `${value}\n`, timeoutMs: 300_000 },
    );
    return r.stdout.split("\n").filter(Boolean);
  }

  async function deploy(host: TestHost, env: string, args: string[], unmanagedKeys?: "keep") {
    const r = await rollout(fleet, host, env, {
      extraArgs: args,
      app: unmanagedKeys ? { unmanagedKeys } : {},
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r;
  }

  before(async () => {
    fleet = await bootFleet(["grace", "emerg", "adopt", "legacy"], log, {
      variant: { adopt: ["envfile"], legacy: ["legacy-env"] },
    });
    app = { fleet, hostHeader: PUBLIC_HOST };
  });
  after(async () => {
    await fleet?.teardown();
  });

  it("routine rotation keeps the previous key: session, reset token and signed value made before it still work; a re-run changes nothing; retiring the fallback rejects them", async () => {
    const host = byName("grace");
    const jwt = randomValue(64);
    const a = envFile({ JWT_SIGNING_KEY: jwt });
    await deploy(host, a.text, ROUTINE);
    const first = await keysOfApp(app, host);
    assert.equal(first.secret_key, fp(a.secretKey));
    assert.deepEqual(first.fallbacks, [], "a first deploy onto a host without an env file keeps nothing");
    const old = await credentials(app, host);
    assert.deepEqual(await verdicts(app, host, old), ACCEPTED, "sanity: accepted before any rotation");

    const b = envFile({ JWT_SIGNING_KEY: jwt });
    const rotated = await deploy(host, b.text, ROUTINE);
    assert.match(rotated.stdout, /previous key is kept as a fallback \(1 kept, at most 1\)/);
    assert.deepEqual(leaked(rotated.stdout + rotated.stderr, [a.secretKey, b.secretKey]), []);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(b.secretKey));
    assert.deepEqual(keys.fallbacks, [fp(a.secretKey)]);
    assert.deepEqual(
      await verdicts(app, host, old),
      ACCEPTED,
      "made with the old key, accepted after a routine rotation",
    );
    const held = await runningKeys(fleet, host, "SECRET_KEY_FALLBACKS");
    for (const [svc, values] of Object.entries(held)) assert.deepEqual(values, [a.secretKey], `${svc} processes`);
    const file = await sh(fleet, host, `cat ${ENV_FILE}`);
    assert.ok(file.includes(`SECRET_KEY='${b.secretKey}'\nSECRET_KEY_FALLBACKS='${a.secretKey}'\n`), file);

    // Stable: the same delivery again computes the same list; nothing is restarted.
    const pids = await mainPids(host);
    const again = await deploy(host, b.text, ROUTINE);
    assert.match(again.stdout, /already in place/);
    assert.equal(await mainPids(host), pids, "no restart on a re-run");

    // Retire (a reviewed config change: secretKeyFallbacks 0): same key, list dropped, proven.
    const fresh = await credentials(app, host);
    const retired = await deploy(host, b.text, RETIRE);
    assert.match(retired.stdout, /0 fallback\(s\) kept \(at most 0\)/);
    assert.deepEqual((await keysOfApp(app, host)).fallbacks, []);
    assert.deepEqual(await verdicts(app, host, old), REJECTED, "made with the retired key: rejected");
    assert.deepEqual(await verdicts(app, host, fresh), ACCEPTED, "made with the current key: still accepted");
    for (const [svc, values] of Object.entries(await runningKeys(fleet, host, "SECRET_KEY_FALLBACKS"))) {
      assert.deepEqual(values, ["<unset>"], `${svc}: no process holds a retired key`);
    }
    assert.ok(!(await sh(fleet, host, `cat ${ENV_FILE}`)).includes("SECRET_KEY_FALLBACKS"));
  });

  it("with secretKeyFallbacks 2 the hosts keep the two newest previous keys, newest first", async () => {
    const host = byName("grace");
    const [c, d, e] = [envFile(), envFile(), envFile()];
    await deploy(host, c.text, KEEP_TWO);
    await deploy(host, d.text, KEEP_TWO);
    await deploy(host, e.text, KEEP_TWO);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(e.secretKey));
    // The key before c (from the previous test) has dropped out: at most two.
    assert.deepEqual(keys.fallbacks, [fp(d.secretKey), fp(c.secretKey)]);
  });

  it("emergency rotation: rejected at once, no fallback, and no file on the host still holds the old key", async () => {
    const host = byName("emerg");
    const a = envFile();
    const b = envFile();
    await deploy(host, a.text, ROUTINE);
    await deploy(host, b.text, ROUTINE); // a in SECRET_KEY_FALLBACKS and in a backup
    const old = await credentials(app, host);
    assert.deepEqual(await verdicts(app, host, old), ACCEPTED);
    // The check below can fail: before the emergency, files hold both keys.
    assert.ok((await filesHolding(host, b.secretKey)).length >= 1, "the current key is in the env file");
    assert.ok((await filesHolding(host, a.secretKey)).length >= 2, "the old key is in the env file and a backup");

    const c = envFile();
    const r = await deploy(host, c.text, EMERGENCY);
    assert.match(r.stdout, /EMERGENCY \(--emergency\): no fallback kept/);
    assert.match(r.stdout, /purge: removed \d+ backup generations/);
    assert.deepEqual(leaked(r.stdout + r.stderr, [a.secretKey, b.secretKey, c.secretKey]), []);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(c.secretKey));
    assert.deepEqual(keys.fallbacks, []);
    assert.deepEqual(await verdicts(app, host, old), REJECTED, "made with the compromised key: rejected immediately");
    assert.deepEqual(await filesHolding(host, b.secretKey), [], "no file holds the compromised key");
    assert.deepEqual(await filesHolding(host, a.secretKey), [], "nor the key before it");
    assert.deepEqual(await filesHolding(host, c.secretKey), [ENV_FILE], "the new key is in the env file only");
  });

  it("adoption: first deploy onto a host whose env file someone wrote by hand logs nobody out", async () => {
    const host = byName("adopt");
    const before = await keysOfApp(app, host);
    assert.equal(before.secret_key, fp(PRESET_ENV.SECRET_KEY));
    const user = await credentials(app, host);
    const a = envFile();
    const r = await deploy(host, a.text, ROUTINE);
    assert.match(r.stdout, /previous key is kept as a fallback/);
    assert.deepEqual(leaked(r.stdout + r.stderr, [PRESET_ENV.SECRET_KEY, a.secretKey]), []);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(a.secretKey));
    assert.deepEqual(keys.fallbacks, [fp(PRESET_ENV.SECRET_KEY)]);
    assert.deepEqual(await verdicts(app, host, user), ACCEPTED, "the logged-in user is still logged in");
  });

  it("adoption of a key made by Django's get_random_secret_key (a `$` in it, unquoted): taken from the running app, user stays logged in", async () => {
    const host = byName("adopt");
    // `$` makes the file ambiguous (bash would expand it, systemd does not): the script keeps the
    // key the running app holds, which is what the sessions were signed with.
    const djangoKey = `k8$v!2m@x9#q%w^e&r*t(y)u-i_o=p+a1s2d3f4g5h6j7k8${randomValue(12)}`;
    const handWritten = Object.entries({ ...PRESET_ENV, SECRET_KEY: djangoKey })
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
    await sh(
      fleet,
      host,
      `install -m 600 /dev/stdin ${ENV_FILE} && systemctl restart pms-backend celery-pms`,
      `${handWritten}\n`,
    );
    for (let i = 0; i < 60 && (await fleet.http(host, "/health/", { host: PUBLIC_HOST })).status !== 200; i++) {
      await new Promise((res) => setTimeout(res, 500));
    }
    assert.equal((await keysOfApp(app, host)).secret_key, fp(djangoKey), "the app runs on the hand-written key");
    const user = await credentials(app, host);
    const a = envFile();
    const r = await deploy(host, a.text, ROUTINE);
    assert.match(r.stdout, /previous key is kept as a fallback \(1 kept/);
    assert.deepEqual(leaked(r.stdout + r.stderr, [djangoKey, a.secretKey]), []);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(a.secretKey));
    assert.deepEqual(keys.fallbacks, [fp(djangoKey)]);
    assert.deepEqual(await verdicts(app, host, user), ACCEPTED);
  });

  it("adoption of a years-old file (export lines, double quotes, unknown keys kept): the user stays logged in", async () => {
    const host = byName("legacy");
    assert.equal((await keysOfApp(app, host)).secret_key, fp(LEGACY_ENV.SECRET_KEY));
    const user = await credentials(app, host);
    const a = envFile({}, ["CELERY_BROKER_URL"]);
    await deploy(host, a.text, ROUTINE, "keep");
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(a.secretKey));
    assert.deepEqual(keys.fallbacks, [fp(LEGACY_ENV.SECRET_KEY)]);
    assert.deepEqual(await verdicts(app, host, user), ACCEPTED);
  });
});

/** The same through the real CLI: what a reviewer sees, and what the users feel. */
describe("SECRET_KEY rotation through the real pulumi CLI: routine, then emergency", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;
  let app: App;

  const ok = (r: CliResult): CliResult => {
    assert.equal(r.code, 0, `pulumi ${r.args.slice(4).join(" ")} failed:\n${r.output}`);
    return r;
  };
  const ran = (r: CliResult): string[] => commandSteps(r).filter((x) => /^(create|update|create-replacement) /.test(x));

  before(async () => {
    fleet = await bootFleet(["cli"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    // fleetConfig's ALLOWED_HOSTS is the public name only, as in production: send it.
    app = { fleet, hostHeader: PUBLIC_HOST };
    stack = await PulumiStack.create({ stack: "dev", log });
    config = fleetConfig(fleet, [host]);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("routine: the preview shows no emergency; users made before it stay logged in; a re-run runs nothing", async () => {
    await stack.setConfig(config);
    ok(await stack.up());
    const first = stack.generatedValue("SECRET_KEY");
    const user = await credentials(app, host);

    config = { ...config, rotate: { SECRET_KEY: "2026-11-26" } };
    await stack.setConfig(config);
    const preview = ok(await stack.preview());
    assert.doesNotMatch(preview.output, /--emergency|keep NO fallback/);
    ok(await stack.up());
    const second = stack.generatedValue("SECRET_KEY");
    assert.notEqual(second, first);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(second));
    assert.deepEqual(keys.fallbacks, [fp(first)]);
    assert.deepEqual(await verdicts(app, host, user), ACCEPTED);
    assert.match(String((await stack.stackOutput()).secretKeyRotation), /^graceful/);
    assert.deepEqual(ran(ok(await stack.up())), [], "a re-run runs no command");
    stack.noteSecret(first);
    assert.deepEqual(stack.leaks(), []);
  });

  it("emergency: one keeper change; the preview says so at a glance; everything made before is rejected", async () => {
    const user = await credentials(app, host);
    const before = stack.generatedValue("SECRET_KEY");
    config = { ...config, rotate: { SECRET_KEY: "emergency-2026-11-26" } };
    await stack.setConfig(config);
    const preview = ok(await stack.preview());
    assert.match(preview.output, /--emergency/, "the rollout command shows --emergency");
    assert.match(preview.output, /keep NO fallback/, "the warning");
    assert.match(preview.output, /EMERGENCY \(rotate\.SECRET_KEY\)/, "the secretKeyRotation output");
    ok(await stack.up());
    const after = stack.generatedValue("SECRET_KEY");
    assert.notEqual(after, before);
    const keys = await keysOfApp(app, host);
    assert.equal(keys.secret_key, fp(after));
    assert.deepEqual(keys.fallbacks, []);
    assert.deepEqual(await verdicts(app, host, user), REJECTED);
    const left = await fleet.exec(host, "ls /var/lib/pms-secrets/backups/*/*.env 2>/dev/null | wc -l");
    assert.equal(left.stdout.trim(), "0", "no backup generation holds the compromised key");
    stack.noteSecret(before);
    assert.deepEqual(stack.leaks(), []);
  });
});
