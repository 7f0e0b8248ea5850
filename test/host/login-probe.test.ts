/**
 * Issue 9 item 2, the old guide's "tested login": `app.loginProbe` on a real host through the
 * real `pulumi` CLI. The probe account and its root-only password file are made with the
 * runbook's own commands (docs/RUNBOOK.md, Host setup, "Login probe", run as written); the test
 * app logs in through Django's stock LoginView with CSRF and Secure cookies as in production.
 * A rotation with the probe passes and says so; a wrong password rolls the host back naming the
 * check; an unsafe password file is refused before any change; no password is ever printed.
 *
 *   node --import tsx --test test/host/login-probe.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { CliResult, commandSteps, PulumiStack } from "./pulumi-cli";
import { appKeyFingerprint, ENV_FILE, fleetConfig, hostFile, keyFingerprint, unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TEST_DB, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
const PASSWORD_FILE = "/etc/pms-secrets/login-probe";

/** The runbook's "Login probe" paragraph: its account commands and its config lines, as written. */
function runbookLoginProbe(): { commands: string; config: Record<string, string> } {
  const text = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
  const at = text.indexOf("**Login probe");
  assert.ok(at >= 0, "docs/RUNBOOK.md has the Login probe paragraph");
  const section = text.slice(at, text.indexOf("\n---", at));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.equal(blocks.length, 2, "the paragraph gives the account commands and the config lines");
  const config: Record<string, string> = {};
  for (const line of blocks[1].trim().split("\n")) {
    const m = /^pulumi config set --stack prod --path 'app\.loginProbe\.(\w+)' (\S+)$/.exec(line);
    assert.ok(m, `a config line the test understands: ${line}`);
    config[m[1]] = m[2];
  }
  return { commands: blocks[0], config };
}

describe("login probe (the old guide's tested login), real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  const runbook = runbookLoginProbe();
  const base = (): Record<string, unknown> => fleetConfig(fleet, [host]);
  const withProbe = (rotate: string): Record<string, unknown> => {
    const c = base();
    return { ...c, app: { ...(c.app as object), loginProbe: runbook.config }, rotate: { SECRET_KEY: rotate } };
  };
  const password = async (): Promise<string> => (await hostFile(fleet, host, PASSWORD_FILE)).content.trim();
  const assertNoPassword = (r: CliResult, pw: string): void => {
    assert.ok(pw.length >= 16, "a real password was generated");
    assert.ok(!r.output.includes(pw), "the probe password is never printed");
    assert.deepEqual(stack.leaks(), []);
  };

  before(async () => {
    fleet = await bootFleet(["probe"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "login-probe", log });
    await stack.setConfig(base());
    const first = await stack.up();
    assert.equal(first.code, 0, first.output);
    // The runbook's commands, as root on the host, after the first deploy.
    const made = await fleet.exec(host, runbook.commands);
    assert.equal(made.code, 0, made.stdout + made.stderr);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("the runbook's commands leave a root-only password file and an account without staff rights", async () => {
    const f = await hostFile(fleet, host, PASSWORD_FILE);
    assert.equal(f.mode, "600");
    assert.equal(f.owner, "root:root");
    const dir = await fleet.exec(host, `stat -c '%a %U' ${path.posix.dirname(PASSWORD_FILE)}`);
    assert.equal(dir.stdout.trim(), "700 root");
    const user = await fleet.exec(
      host,
      `runuser -u postgres -- psql -X -A -t -d ${TEST_DB.name} -c "SELECT is_staff, is_superuser, is_active FROM auth_user WHERE username = '${runbook.config.username}'"`,
    );
    assert.equal(user.stdout.trim(), "f|f|t", user.stderr);
  });

  it("a rotation with the probe: the probe account logs in and the session page answers 200, the new key runs", async () => {
    const r = await stack.setConfig(withProbe("probe-1")).then(() => stack.up());
    assert.equal(r.code, 0, r.output);
    assert.match(
      r.output,
      /restart: pms-backend login probe: rollout-probe logged in at http:\/\/127\.0\.0\.1:8000\/accounts\/login\/ and http:\/\/127\.0\.0\.1:8000\/me\/ answered 200/,
    );
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")));
    const leftovers = await fleet.exec(host, "find /var/lib/pms-secrets/runs -path '*/login*' | wc -l");
    assert.equal(leftovers.stdout.trim(), "0", "no cookie or password copy left in the run dirs");
    assertNoPassword(r, await password());
  });

  it("a wrong password in the file: the rotation is rolled back naming the check; the file's content is never printed", async () => {
    const good = await password();
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const oldKey = stack.generatedValue("SECRET_KEY");
    const wrong = "wrong-" + good.split("").reverse().join("");
    assert.equal((await fleet.exec(host, `cat > ${PASSWORD_FILE}`, { stdin: `${wrong}\n` })).code, 0);
    try {
      await stack.setConfig(withProbe("probe-2"));
      const r = await stack.up();
      assert.notEqual(r.code, 0);
      assert.deepEqual(commandSteps(r), ["create-replacement probe-rollout FAILED"]);
      assert.match(
        r.output,
        /pms-rollout FAILED host=probe service=pms-backend check=login-probe: POST http:\/\/127\.0\.0\.1:8000\/accounts\/login\/ as rollout-probe gave the login form again: wrong password in \/etc\/pms-secrets\/login-probe.*previous env restored and services healthy on it/,
      );
      assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, "previous env restored");
      assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(oldKey), "old key running");
      assertNoPassword(r, wrong);
    } finally {
      await fleet.exec(host, `cat > ${PASSWORD_FILE}`, { stdin: `${good}\n` });
    }
    // The right password back: the same config goes through.
    const fixed = await stack.up();
    assert.equal(fixed.code, 0, fixed.output);
    assert.match(fixed.output, /login probe: rollout-probe logged in/);
  });

  it("a password file others can read, or a symlink, is refused before any change, with the fix", async () => {
    const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
    const cases: Array<[string, string, RegExp]> = [
      [
        `chmod 0644 ${PASSWORD_FILE}`,
        `chmod 0600 ${PASSWORD_FILE}`,
        /check=login-probe: \/etc\/pms-secrets\/login-probe must be root's alone \(it is uid 0, mode 644, 1 link\(s\)\): chown root:root \/etc\/pms-secrets\/login-probe && chmod 0600/,
      ],
      [
        `mv ${PASSWORD_FILE} ${PASSWORD_FILE}.real && ln -s ${PASSWORD_FILE}.real ${PASSWORD_FILE}`,
        `rm ${PASSWORD_FILE} && mv ${PASSWORD_FILE}.real ${PASSWORD_FILE}`,
        /check=login-probe: \/etc\/pms-secrets\/login-probe is missing or not a regular file/,
      ],
    ];
    for (const [i, [breakIt, fixIt, refusal]] of cases.entries()) {
      assert.equal((await fleet.exec(host, breakIt)).code, 0);
      try {
        await stack.setConfig(withProbe(`probe-unsafe-${i}`));
        const r = await stack.up();
        assert.notEqual(r.code, 0);
        assert.match(r.output, refusal);
        assert.match(r.output, /nothing on the host was changed/);
        assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
        assertNoPassword(r, await password());
      } finally {
        assert.equal((await fleet.exec(host, fixIt)).code, 0);
      }
    }
  });

  // Issue 19 item 5. Last in this file: it leaves the emergency keeper in force.
  it("a failing login probe (the account locked out): a routine rotation rolls back on it; an emergency rotation completes with a WARNING naming host and check", async () => {
    const sql = (active: boolean): string =>
      `runuser -u postgres -- psql -X -q -d ${TEST_DB.name} -c "UPDATE auth_user SET is_active = ${active} WHERE username = '${runbook.config.username}'"`;
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    // What the host runs now (the state's key may be one an earlier refused run never delivered).
    const runningKey = (await appKeyFingerprint(fleet, host)).secret_key;
    // What anyone can do who knows the public account name where the app locks accounts out.
    assert.equal((await fleet.exec(host, sql(false))).code, 0);
    try {
      await stack.setConfig(withProbe("probe-locked-routine"));
      const routine = await stack.up();
      assert.notEqual(routine.code, 0, "a routine rotation still rolls back on the login probe");
      assert.deepEqual(commandSteps(routine), ["create-replacement probe-rollout FAILED"]);
      assert.match(
        routine.output,
        /pms-rollout FAILED host=probe service=pms-backend check=login-probe: POST \S+ as rollout-probe gave the login form again: .*account is inactive or locked.*previous env restored and services healthy on it/,
      );
      assert.doesNotMatch(routine.output, /pms-rollout WARNING/);
      assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, "previous env restored");
      assert.equal((await appKeyFingerprint(fleet, host)).secret_key, runningKey, "old key running");

      await stack.setConfig(withProbe("emergency-2026-12-05"));
      const emergency = await stack.up();
      assert.equal(emergency.code, 0, emergency.output);
      assert.deepEqual(commandSteps(emergency), [
        "create-replacement probe-rollout",
        "replace probe-rollout",
        "delete-replaced probe-rollout",
      ]);
      const warning =
        /pms-rollout WARNING host=probe service=pms-backend check=login-probe: POST \S+ as rollout-probe gave the login form again: .*; EMERGENCY rotation: NOT rolled back on the login probe alone/g;
      const warnings = emergency.output.match(warning) ?? [];
      assert.ok(
        warnings.length >= 2,
        `the warning is printed when it happens and again at the end:\n${emergency.output}`,
      );
      assert.doesNotMatch(emergency.output, /pms-rollout FAILED/);
      const newKey = stack.generatedValue("SECRET_KEY");
      assert.notEqual(keyFingerprint(newKey), runningKey);
      const running = await appKeyFingerprint(fleet, host);
      assert.equal(
        running.secret_key,
        keyFingerprint(newKey),
        "the host runs the new key: the compromised one is gone",
      );
      assert.deepEqual(running.fallbacks, [], "no fallback: the old key is rejected");
      assert.match(
        emergency.output,
        /purge: removed \d+ backup generations/,
        "the backups holding the old key are purged",
      );
      assert.equal((await fleet.http(host, "/health/")).status, 200);
      assertNoPassword(emergency, await password());
    } finally {
      await fleet.exec(host, sql(true));
    }
    // The account usable again: the same emergency config finds everything in place, nothing runs.
    const again = await stack.up();
    assert.equal(again.code, 0, again.output);
    assert.deepEqual(commandSteps(again), []);
  });
});
