/**
 * One sudoers line, three places that must agree: docs/RUNBOOK.md "Host setup" (what operators
 * install), test/host/image/build.sh (what every test host's deploy user has, so the host tests
 * prove that line suffices) and the command the program runs for a non-root login
 * (host-rollout.ts rolloutCommand). The real sudo's matching is proven on a host by
 * test/host/smoke.test.ts; this test keeps the three texts from drifting apart in seconds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { AppSpec, HostSpec } from "../components/config";
import { rolloutCommand } from "../components/host-rollout";

const root = path.join(__dirname, "..");
const APP: AppSpec = {
  dir: "/srv/pms-backend",
  envFile: "/srv/pms-backend/.env.production",
  services: ["pms-backend", "celery-pms"],
  healthUrls: ["http://127.0.0.1:8000/health/"],
  healthInsecure: false,
  unmanagedKeys: "refuse",
  backupGenerations: 3,
  stableSeconds: 5,
  healthTimeoutSeconds: 30,
};
const HOST: HostSpec = { name: "web1", address: "10.0.0.5", port: 22, user: "root" };
const runbook = fs.readFileSync(path.join(root, "docs", "RUNBOOK.md"), "utf8");
const buildSh = fs.readFileSync(path.join(root, "test", "host", "image", "build.sh"), "utf8");

/** The body of the "Host setup" section (up to the next heading of the same or a higher level). */
function hostSetupSection(): string {
  const start = runbook.indexOf("\n### Host setup\n");
  assert.ok(start >= 0, "RUNBOOK.md has a '### Host setup' section");
  const rest = runbook.slice(start + 1);
  const end = rest.slice(4).search(/\n#{2,3} /);
  return end < 0 ? rest : rest.slice(0, end + 4);
}

/** The sudoers lines of the section's fenced blocks that grant a command (user ALL=(...) ...). */
function runbookSudoersLines(): string[] {
  const blocks = [...hostSetupSection().matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((b) => b.split("\n")).filter((l) => /^\S+ ALL=\(/.test(l));
}

/** Every line of the fenced block that holds the grant: the Defaults line(s), then the grant. */
function runbookSudoersBlock(): string[] {
  const blocks = [...hostSetupSection().matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.split("\n").some((l) => /^\S+ ALL=\(/.test(l)));
  assert.ok(block, "Host setup has the sudoers block");
  return block.split("\n").filter((l) => l !== "");
}

function buildShDefaults(): string {
  const m = /^DEPLOY_SUDOERS_DEFAULTS='([^']*)'$/m.exec(buildSh);
  assert.ok(m, "build.sh defines DEPLOY_SUDOERS_DEFAULTS='...'");
  return m[1];
}

function buildShLine(): string {
  const m = /^DEPLOY_SUDOERS_LINE='([^']*)'$/m.exec(buildSh);
  assert.ok(m, "build.sh defines DEPLOY_SUDOERS_LINE='...'");
  return m[1];
}

test("the runbook gives exactly one sudoers line, and the test image installs exactly that line", () => {
  const lines = runbookSudoersLines();
  assert.equal(lines.length, 1, `one sudoers line in Host setup, found: ${JSON.stringify(lines)}`);
  assert.equal(buildShLine(), lines[0]);
  // ... into the file the runbook names, and the old catch-all rule is gone.
  assert.match(hostSetupSection(), /visudo -f \/etc\/sudoers\.d\/pms-rollout/);
  assert.match(buildSh, /^DEPLOY_SUDOERS_FILE="\/etc\/sudoers\.d\/pms-rollout"$/m);
  assert.doesNotMatch(buildSh, /NOPASSWD: ALL/);
  assert.match(buildSh, /visudo -c -q -f \$DEPLOY_SUDOERS_FILE/, "the image build checks the rule with visudo");
});

test("the rule turns sudo's I/O logging off for the deploy user (stdin holds every secret), in the runbook and the image alike", () => {
  const block = runbookSudoersBlock();
  const user = /^(\S+) ALL=/.exec(buildShLine())?.[1];
  assert.deepEqual(block, [buildShDefaults(), buildShLine()]);
  assert.match(buildShDefaults(), new RegExp(`^Defaults:${user} (?=.*!log_input)(?=.*!log_output)`));
  assert.match(buildSh, /printf '%s\\n' '\$DEPLOY_SUDOERS_DEFAULTS' '\$DEPLOY_SUDOERS_LINE' >\$DEPLOY_SUDOERS_FILE/);
  assert.match(hostSetupSection(), /\/var\/log\/sudo-io/);
});

test("the line's command is the one the program runs for a non-root login, root-only, no password", () => {
  const line = buildShLine();
  const m = /^(\S+) ALL=\(root\) NOPASSWD: (\/bin\/bash -s --) \*$/.exec(line);
  assert.ok(m, `unexpected rule shape: ${line}`);
  const cmd = rolloutCommand({ ...HOST, user: m[1] }, APP);
  assert.ok(cmd.startsWith(`sudo -n ${m[2]} `), cmd);
  // The runbook names the same form in prose, and never bash -c.
  assert.ok(hostSetupSection().includes(`sudo -n ${m[2]} --host NAME`));
  assert.equal(rolloutCommand({ ...HOST, user: "root" }, APP).startsWith(`${m[2]} `), true);
});

test("the runbook says plainly that the rule is root-equivalent and why it is still the narrowest one", () => {
  const section = hostSetupSection();
  assert.match(section, /the deploy user is root/i);
  assert.match(section, /root-equivalent: `bash -s` runs\s+whatever script arrives on stdin/);
  assert.match(section, /narrowest rule that works with the command provider/);
  assert.match(section, /narrower rule is not possible/i);
});
