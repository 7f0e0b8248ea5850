/**
 * The upgrade from the bash host agent to the Python one (issue 18, item 6), through the real
 * `pulumi` CLI on a real host: a stack deployed by the last program that sent the bash agent
 * (main at BASH_AGENT_COMMIT, taken from this repository's history with `git archive`) is then run
 * by this checkout's program, on the same stack, config and state, as an operator upgrading would.
 * What README's upgrade note promises: the new agent's fingerprint replaces each rollout once; a
 * host already on its env changes nothing and restarts nothing; nothing is run again after that;
 * and the next rotation keeps the key the bash agent installed as the fallback.
 *
 *   node --import tsx --test test/host/upgrade.test.ts     (root, Linux; needs the repository's history)
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { assertOk, changesOf, PulumiStack, ran } from "./pulumi-cli";
import {
  appKeyFingerprint,
  celeryRoundTrip,
  ENV_FILE,
  fleetConfig,
  hostFile,
  keyFingerprint,
  servicesState,
  unavailable,
} from "./scenario";
import { APP, bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

const REPO = path.join(__dirname, "..", "..");
/** main's last commit whose program sent the bash agent (components/scripts/rollout.sh). */
const BASH_AGENT_COMMIT = "051175a42cf3ab0ca9a4b9030e678a66c43048ad";

/** That commit's tree in a temp directory, with this checkout's node_modules (same dependencies). */
function bashAgentCheckout(): string {
  const has = (ref: string): boolean => {
    try {
      execFileSync("git", ["-C", REPO, "cat-file", "-e", ref], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  if (!has(`${BASH_AGENT_COMMIT}^{commit}`)) {
    throw new Error(
      `commit ${BASH_AGENT_COMMIT} (the last program with the bash agent) is not in ${REPO}: a shallow clone? Fix: git fetch --unshallow`,
    );
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-bash-agent-"));
  execFileSync("bash", ["-c", 'git -C "$1" archive "$2" | tar -x -C "$3"', "_", REPO, BASH_AGENT_COMMIT, dir]);
  const deps = (root: string): unknown => {
    const j = JSON.parse(fs.readFileSync(path.join(root, "package-lock.json"), "utf8")) as { packages: unknown };
    return j.packages;
  };
  assert.deepEqual(
    deps(dir),
    deps(REPO),
    "the old program's dependencies are this checkout's (its node_modules is shared)",
  );
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** What a host holds that a rollout writes: the env file, each drop-in, the state directory's backups. */
async function hostSide(fleet: TestFleet, host: TestHost): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const env = await hostFile(fleet, host, ENV_FILE);
  out[ENV_FILE] = `${env.mode} ${env.owner}\n${env.content}`;
  for (const svc of APP.services) {
    const f = `/etc/systemd/system/${svc}.service.d/50-pms-secrets.conf`;
    const d = await hostFile(fleet, host, f);
    out[f] = `${d.mode} ${d.owner}\n${d.content}`;
  }
  const backups = await fleet.exec(
    host,
    "cd /var/lib/pms-secrets/backups && find . -type f | sort | xargs -r sha256sum",
  );
  out.backups = backups.stdout;
  return out;
}

describe("upgrade from the bash agent, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let oldCheckout: string;
  let config: Record<string, unknown>;
  let bashKey = "";

  before(async () => {
    oldCheckout = bashAgentCheckout();
    fleet = await bootFleet(["upg"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log, source: oldCheckout });
    config = fleetConfig(fleet, [host]);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
    if (oldCheckout) fs.rmSync(oldCheckout, { recursive: true, force: true });
  });

  it("the old program deploys with the bash agent", async () => {
    assert.ok(fs.existsSync(path.join(stack.workspace, "components", "scripts", "rollout.sh")), "the bash agent");
    assert.ok(!fs.existsSync(path.join(stack.workspace, "agent", "bootstrap.sh")), "no Python agent");
    await stack.setConfig(config);
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(ran(r), ["create upg-rollout"]);
    bashKey = stack.generatedValue("SECRET_KEY");
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(bashKey));
  });

  it("this program's first run replaces the rollout once; the host changes nothing and restarts nothing", async () => {
    const units = await servicesState(fleet, host);
    const files = await hostSide(fleet, host);
    await stack.useProgram(REPO);
    const preview = await stack.preview(["--diff"]);
    assertOk(preview);
    // The reviewer sees why: the rollout's trigger names the agent's new fingerprint.
    assert.match(preview.output, /\+-command:remote:Command: \(replace\)[\s\S]*?"script:[0-9a-f]{16}"/);
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(ran(r), ["create-replacement upg-rollout"]);
    assert.equal(changesOf(r).replace, 1, JSON.stringify(changesOf(r)));
    assert.match(r.output, /pms-rollout\[upg\] .*already in place and proven in the running processes; nothing to do/);
    assert.deepEqual(await servicesState(fleet, host), units, "no service restarted");
    assert.deepEqual(await hostSide(fleet, host), files, "env file, drop-ins and backups as the bash agent left them");
    assert.equal(stack.generatedValue("SECRET_KEY"), bashKey, "no secret rotated by the upgrade");
    assert.deepEqual(stack.leaks(), []);
  });

  it("after the upgrade a re-run runs nothing", async () => {
    const units = await servicesState(fleet, host);
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(ran(r), []);
    assert.deepEqual(await servicesState(fleet, host), units);
  });

  it("the first rotation on the Python agent keeps the bash agent's key as the fallback", async () => {
    config = { ...config, rotate: { SECRET_KEY: "2026-12-05" } };
    await stack.setConfig(config);
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(ran(r), ["create-replacement upg-rollout"]);
    const running = await appKeyFingerprint(fleet, host);
    assert.equal(running.secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")));
    assert.notEqual(stack.generatedValue("SECRET_KEY"), bashKey);
    assert.deepEqual(running.fallbacks, [keyFingerprint(bashKey)]);
    assert.ok(await celeryRoundTrip(fleet, host, "after-upgrade-rotation"), "Celery task row written");
    assert.deepEqual(stack.leaks(), []);
  });
});
