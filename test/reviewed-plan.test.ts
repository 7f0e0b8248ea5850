/**
 * components/reviewed-plan.ts (issue 21): when a deploy may use the pull request's reviewed plan
 * instead of previewing again. The same commands the workflows run, in a scratch git checkout with
 * a stand-in `pulumi` whose `stack export` prints a fixed checkpoint; the real CLI:
 * test/host/reviewed-plan.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import test from "node:test";
import {
  planMismatches,
  plaintextSecrets,
  PLAN_FILE,
  RECORD_FILE,
  RECORD_FORMAT,
  sha256,
} from "../components/reviewed-plan";

const SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
/** The shape `pulumi preview --save-plan` writes (3.248): config, resource plans with their state. */
const plan = (state: Record<string, unknown>): string =>
  JSON.stringify({
    manifest: { version: "v3.248.0" },
    config: { "pms-secrets:secrets": { secure: "v1:abc" }, "pms-secrets:rotation": "2026-11-01" },
    resourcePlans: { "urn:x": { steps: ["same"], state } },
  });
const ENCRYPTED = plan({ result: { [SIG]: SECRET_SIG, ciphertext: "v1:zz" } });
const PLAIN = plan({ result: { [SIG]: SECRET_SIG, plaintext: '"hunter2-hunter2"' } });

const SCRIPT = path.join(__dirname, "..", "components", "reviewed-plan.ts");
/** As the workflows run it (`npx tsx`), from a checkout without node_modules of its own. */
const TSX = path.join(__dirname, "..", "node_modules", ".bin", "tsx");

test("plaintextSecrets: encrypted envelopes pass; a plan saved with --show-secrets is caught, by path", () => {
  assert.deepEqual(plaintextSecrets(JSON.parse(ENCRYPTED)), []);
  assert.deepEqual(plaintextSecrets(JSON.parse(PLAIN)), ["$.resourcePlans.urn:x.state.result"]);
  assert.deepEqual(plaintextSecrets({ a: [{ plaintext: "x" }] }), ["$.a[0]"]);
});

test("planMismatches: the same stack, tree, state and plan bytes: use it; each difference is named", () => {
  const facts = { stack: "prod", tree: "t1", state: "s1", plan: Buffer.from(ENCRYPTED) };
  const record = {
    format: RECORD_FORMAT,
    stack: "prod",
    tree: "t1",
    commit: "c",
    state: "s1",
    planSha256: sha256(ENCRYPTED),
  };
  assert.deepEqual(planMismatches(record, facts), []);
  assert.match(
    planMismatches({ ...record, stack: "dev" }, facts).join("\n"),
    /plan is for stack dev, this deploy is prod/,
  );
  assert.match(
    planMismatches({ ...record, tree: "t0" }, facts).join("\n"),
    /source tree t0, this deploy is t1 \(main moved/,
  );
  assert.match(planMismatches({ ...record, state: "s0" }, facts).join("\n"), /state changed since the preview/);
  assert.match(planMismatches({ ...record, planSha256: "0" }, facts).join("\n"), /not the one the preview recorded/);
  assert.match(
    planMismatches({ ...record, planSha256: sha256(PLAIN) }, { ...facts, plan: Buffer.from(PLAIN) }).join("\n"),
    /secrets in plain text at/,
  );
  assert.match(planMismatches({ ...record, format: 0 }, facts).join("\n"), /not format 1/);
  assert.match(planMismatches(null, facts).join("\n"), /not format 1/);
});

test("the workflows' commands: record after an unchanged state, check says plan=PATH; a moved tree or state, or no artifact, says plan= and why", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-reviewed-plan-"));
  try {
    const repo = path.join(dir, "repo");
    const art = path.join(dir, "artifact");
    fs.mkdirSync(repo);
    fs.mkdirSync(art);
    const git = (...a: string[]): string =>
      execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...a], {
        cwd: repo,
        encoding: "utf8",
      });
    git("init", "-q");
    fs.writeFileSync(path.join(repo, "Pulumi.prod.yaml"), "config: {}\n");
    git("add", "-A");
    git("commit", "-q", "-m", "one");
    // A stand-in CLI: `stack export` prints the checkpoint file.
    const checkpoint = path.join(dir, "checkpoint.json");
    fs.writeFileSync(checkpoint, '{"version":3,"deployment":{"manifest":{"time":"t1"}}}\n');
    const fake = path.join(dir, "pulumi");
    fs.writeFileSync(fake, `#!/bin/sh\n[ "$1 $2" = "stack export" ] && exec cat '${checkpoint}'\nexit 9\n`, {
      mode: 0o755,
    });
    const run = (...a: string[]) => {
      const r = spawnSync(TSX, [SCRIPT, ...a], {
        cwd: repo,
        env: { ...process.env, PULUMI: fake, GITHUB_OUTPUT: "" },
        encoding: "utf8",
      });
      return { code: r.status, out: r.stdout + r.stderr };
    };

    const before = run("state", "--stack", "prod");
    assert.equal(before.code, 0, before.out);
    fs.writeFileSync(path.join(art, PLAN_FILE), ENCRYPTED);
    /** `record` of the artifact's plan against the state taken before the preview, into `out`. */
    const recordInto = (out: string) =>
      run(
        "record",
        "--stack",
        "prod",
        "--plan",
        path.join(art, PLAN_FILE),
        "--state-before",
        before.out.trim(),
        "--out",
        out,
      );
    const rec = recordInto(path.join(art, RECORD_FILE));
    assert.equal(rec.code, 0, rec.out);
    const record = JSON.parse(fs.readFileSync(path.join(art, RECORD_FILE), "utf8")) as Record<string, unknown>;
    assert.equal(record.tree, git("rev-parse", "HEAD^{tree}").trim());
    assert.equal(record.state, before.out.trim());

    let check = run("check", "--stack", "prod", "--dir", art);
    assert.equal(check.code, 0, check.out);
    assert.match(check.out, new RegExp(`^plan=${path.join(art, PLAN_FILE)}$`, "m"));

    // Another commit on main after the preview: a new tree.
    fs.writeFileSync(path.join(repo, "Pulumi.prod.yaml"), "config: {rotation: x}\n");
    git("commit", "-q", "-am", "two");
    check = run("check", "--stack", "prod", "--dir", art);
    assert.match(check.out, /^plan=$/m);
    assert.match(check.out, /::notice title=No reviewed plan for prod::.*source tree/);
    git("reset", "-q", "--hard", "HEAD~1");

    // Another update of the stack since the preview: a new checkpoint.
    fs.writeFileSync(checkpoint, '{"version":3,"deployment":{"manifest":{"time":"t2"}}}\n');
    check = run("check", "--stack", "prod", "--dir", art);
    assert.match(check.out, /^plan=$/m);
    assert.match(check.out, /state changed since the preview/);

    // The state moved during the preview: nothing is recorded.
    const racing = recordInto(path.join(dir, "r2.json"));
    assert.equal(racing.code, 1);
    assert.match(racing.out, /was updated while this preview ran.*re-run this preview/);
    assert.ok(!fs.existsSync(path.join(dir, "r2.json")));

    // No artifact (no pull request, or the preview expired).
    check = run("check", "--stack", "prod", "--dir", path.join(dir, "none"));
    assert.match(check.out, /^plan=$/m);
    assert.match(check.out, /no reviewed plan found/);

    // A plan saved with --show-secrets is refused at record time and deleted.
    fs.writeFileSync(checkpoint, '{"version":3,"deployment":{"manifest":{"time":"t1"}}}\n');
    fs.writeFileSync(path.join(dir, "plain.json"), PLAIN);
    const plain = run(
      "record",
      "--stack",
      "prod",
      "--plan",
      path.join(dir, "plain.json"),
      "--state-before",
      before.out.trim(),
      "--out",
      path.join(dir, "r3.json"),
    );
    assert.equal(plain.code, 1);
    assert.match(plain.out, /plain text .*deleted/);
    assert.doesNotMatch(plain.out, /hunter2/);
    assert.ok(!fs.existsSync(path.join(dir, "plain.json")));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
