/**
 * The deploy of a reviewed preview (issue 21, docs/ROTATING.md "Deploying a reviewed preview"),
 * through the real `pulumi` CLI on a real host: the preview saves its update plan
 * (`pulumi preview --save-plan`), components/reviewed-plan.ts records the source tree and the
 * stack's state next to it, and the deploy runs `pulumi up --skip-preview --plan` only when its
 * check finds the same tree and state:
 *   - a matching plan: no preview (one program run), the rotation happens and is served;
 *   - a plan that no longer matches (the keeper changed after it was saved): the check refuses it
 *     and names why; forced through anyway, the engine fails before any host is touched and
 *     changes nothing (no SSH login, same state, same env file, same running key);
 *   - no secret value in the plan file, its record or anything the CLI and the check printed.
 *
 *   node --import tsx --test test/host/reviewed-plan.test.ts     (root, Linux; ~3 min, 1 host)
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { commandSteps, CliResult, PulumiStack, StateResource } from "./pulumi-cli";
import { appKeyFingerprint, ENV_FILE, fleetConfig, hostFile, keyFingerprint, sshLogins, unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";
import { PLAN_FILE, RECORD_FILE } from "../../components/reviewed-plan";

/** URN and changed field names (never values: they hold secrets) of resources that differ. */
function changedResources(a: StateResource[], b: StateResource[]): string[] {
  const out: string[] = [];
  const byUrn = new Map(b.map((r) => [r.urn, r]));
  for (const r of a) {
    const o = byUrn.get(r.urn);
    if (!o) {
      out.push(`${r.urn}: gone`);
      continue;
    }
    for (const part of ["inputs", "outputs"] as const) {
      const keys = new Set([...Object.keys(r[part]), ...Object.keys(o[part])]);
      for (const k of keys) {
        if (JSON.stringify(r[part][k]) !== JSON.stringify(o[part][k])) out.push(`${r.urn}: ${part}.${k}`);
      }
    }
    byUrn.delete(r.urn);
  }
  for (const urn of byUrn.keys()) out.push(`${urn}: new`);
  return out;
}

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

describe("deploying a reviewed preview's plan, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;
  /** Everything the check script printed (scanned for secrets). */
  const printed: string[] = [];

  /** The workspace as a git checkout: the tree the record names is its HEAD's. */
  const git = (...a: string[]): string =>
    execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...a], {
      cwd: stack.workspace,
      encoding: "utf8",
    });
  const commit = (message: string): void => {
    git("add", "-A");
    git("commit", "-q", "--allow-empty", "-m", message);
  };

  /** components/reviewed-plan.ts as the workflows run it, in the workspace, with the stack's CLI. */
  const script = (...a: string[]): { code: number; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join("components", "reviewed-plan.ts"), ...a], {
      cwd: stack.workspace,
      env: { ...stack.env(), PULUMI: path.join(stack.bin, "pulumi"), GITHUB_OUTPUT: "" },
      encoding: "utf8",
    });
    printed.push(r.stdout, r.stderr);
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };

  /** The preview job: state digest, `pulumi preview --save-plan`, the record. Returns the artifact dir. */
  const reviewedPreview = async (name: string): Promise<{ dir: string; preview: CliResult }> => {
    const dir = path.join(stack.dir, `artifact-${name}`);
    fs.mkdirSync(dir);
    const state = script("state", "--stack", stack.stack);
    assert.equal(state.code, 0, state.stderr);
    const preview = await stack.preview(["--save-plan", path.join(dir, PLAN_FILE)]);
    assert.equal(preview.code, 0, preview.output);
    const rec = script(
      "record",
      "--stack",
      stack.stack,
      "--plan",
      path.join(dir, PLAN_FILE),
      "--state-before",
      state.stdout.trim(),
      "--out",
      path.join(dir, RECORD_FILE),
    );
    assert.equal(rec.code, 0, rec.stderr);
    return { dir, preview };
  };

  /** Every known secret value found in the artifact's files (none is the only good answer). */
  const secretsIn = (dir: string): string[] => {
    const found: string[] = [];
    for (const f of fs.readdirSync(dir)) {
      const bytes = fs.readFileSync(path.join(dir, f), "utf8");
      for (const s of stack.secrets) if (bytes.includes(s)) found.push(`${f}: ${s.slice(0, 6)}...`);
    }
    return found;
  };

  /** The env file and running key; the SSH login count last (each reading is a login itself). */
  const hostSnapshot = async (): Promise<{ logins: number; env: string; key: string }> => {
    const env = (await hostFile(fleet, host, ENV_FILE)).content;
    const key = (await appKeyFingerprint(fleet, host)).secret_key;
    return { env, key, logins: await sshLogins(fleet, host) };
  };

  before(async () => {
    fleet = await bootFleet(["plan1"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log });
    config = fleetConfig(fleet, [host]);
    await stack.setConfig(config);
    const first = await stack.up();
    assert.equal(first.code, 0, first.output);
    git("init", "-q");
    commit("deployed");
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("a matching reviewed plan: the deploy skips the preview (one program run) and rotates SECRET_KEY", async () => {
    const oldKey = stack.generatedValue("SECRET_KEY");
    await stack.setConfig({ ...config, rotate: { SECRET_KEY: "reviewed-1" } });
    commit("rotate SECRET_KEY");
    const { dir } = await reviewedPreview("match");
    const check = script("check", "--stack", stack.stack, "--dir", dir);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`^plan=${path.join(dir, PLAN_FILE)}$`, "m"), check.stdout);

    const up = await stack.up(["--skip-preview", "--plan", path.join(dir, PLAN_FILE)]);
    assert.equal(up.code, 0, up.output);
    assert.doesNotMatch(up.output, /^Previewing update/m, "no preview");
    assert.equal(
      up.timedEvents.filter((s) => s.length > 0).length,
      1,
      "one engine run (the update), no preview before it",
    );
    assert.ok(
      commandSteps(up).some((s) => /^(create|create-replacement|update) plan1-rollout/.test(s)),
      commandSteps(up).join(", "),
    );
    const newKey = stack.generatedValue("SECRET_KEY");
    assert.notEqual(newKey, oldKey, "SECRET_KEY was rotated");
    assert.equal(
      (await appKeyFingerprint(fleet, host)).secret_key,
      keyFingerprint(newKey),
      "the host serves the new key",
    );
    assert.deepEqual(secretsIn(dir), [], "no secret in the plan or its record");
    assert.deepEqual(stack.leaks(), []);
    assert.deepEqual(
      stack.secrets.filter((s) => printed.some((p) => p.includes(s))),
      [],
      "the check printed no secret",
    );
    commit("deployed reviewed-1");
  });

  it("a plan that no longer matches (the keeper changed after it was saved): the check refuses it; forced, the engine fails before any host is touched and changes nothing", async () => {
    await stack.setConfig({ ...config, rotate: { SECRET_KEY: "reviewed-2" } });
    commit("rotate SECRET_KEY again");
    const { dir } = await reviewedPreview("stale");
    // After the review: the keeper changes again (a later push to main).
    await stack.setConfig({ ...config, rotate: { SECRET_KEY: "reviewed-3" } });
    commit("rotate SECRET_KEY, unreviewed");

    const check = script("check", "--stack", stack.stack, "--dir", dir);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^plan=$/m, "the deploy does not use the plan");
    assert.match(
      check.stdout,
      /::notice title=No reviewed plan for dev::the deploy previews afresh .*source tree \S+, this deploy is \S+ \(main moved after the preview/,
    );

    const key = stack.generatedValue("SECRET_KEY");
    const stateBefore0 = await stack.exportState();
    const stateBefore = script("state", "--stack", stack.stack).stdout.trim();
    const onHost = await hostSnapshot();
    // The check bypassed: the engine itself holds the update to the plan.
    const forced = await stack.up(["--skip-preview", "--plan", path.join(dir, PLAN_FILE)]);
    assert.notEqual(forced.code, 0, "a deviating update must fail");
    assert.match(forced.output, /violates plan|is not allowed by the plan/);
    log(forced.output);
    const stateAfter = script("state", "--stack", stack.stack).stdout.trim();
    log(`state digest before the forced up ${stateBefore}, after ${stateAfter}`);
    // The failed update rewrote the checkpoint: a re-run of the deploy no longer matches the plan
    // and previews afresh (docs/ROTATING.md).
    assert.notEqual(stateAfter, stateBefore, "the failed update changed the state digest");
    assert.deepEqual(commandSteps(forced), [], "no rollout ran");
    assert.deepEqual(changedResources(stateBefore0, stack.state), [], "the state's resources are unchanged");
    assert.equal(stack.generatedValue("SECRET_KEY"), key);
    const logins = await sshLogins(fleet, host);
    assert.equal(logins - onHost.logins - 1, 0, "no SSH login during the forced up (the 1 is the reading itself)");
    const now = await hostSnapshot();
    assert.equal(now.env, onHost.env, "the env file is unchanged");
    assert.equal(now.key, onHost.key, "the app runs the same key");
    assert.equal(now.key, keyFingerprint(key));
    assert.deepEqual(secretsIn(dir), []);
    assert.deepEqual(stack.leaks(), []);

    // What the deploy does instead (the check's fallback): preview afresh, then the update
    // constrained to that preview's plan; it rotates to the keeper now on main.
    const { dir: fresh } = await reviewedPreview("fresh");
    const up = await stack.up(["--skip-preview", "--plan", path.join(fresh, PLAN_FILE)]);
    assert.equal(up.code, 0, up.output);
    assert.notEqual(stack.generatedValue("SECRET_KEY"), key);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")));
    assert.deepEqual(stack.leaks(), []);
  });
});
