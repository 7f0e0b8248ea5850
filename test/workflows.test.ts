import * as path from "node:path";
/**
 * The GitHub Actions workflows: each file passes the real validator (@action-validator/cli,
 * the GitHub workflow JSON schema), and the parsed YAML has the properties issue 4 asks for.
 * A deliberately broken workflow must make the validator fail, so this check can fail.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";

const root = path.join(__dirname, "..");
const workflowDir = join(root, ".github", "workflows");
const validator = join(root, "node_modules", ".bin", "action-validator");

type Json = Record<string, unknown>;
interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  environment?: string | { name: string };
  concurrency?: { group: string; "cancel-in-progress": boolean } | string;
  strategy?: { matrix?: { stack?: string[] } };
  needs?: string | string[];
  env?: Record<string, unknown>;
  steps: Step[];
}
interface Workflow {
  on: Json;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const files = readdirSync(workflowDir).filter((f) => /\.ya?ml$/.test(f));
const load = (file: string): Workflow => yaml.load(readFileSync(join(workflowDir, file), "utf8")) as Workflow;
const text = (file: string): string => readFileSync(join(workflowDir, file), "utf8");

function validate(path: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [validator, path], { encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The workflow triggered by `event`, exactly one. */
function workflowOn(event: string): { file: string; wf: Workflow } {
  const matches = files.map((file) => ({ file, wf: load(file) })).filter(({ wf }) => event in (wf.on ?? {}));
  assert.equal(matches.length, 1, `exactly one workflow runs on ${event}`);
  return matches[0];
}

const pulumiSteps = (job: Job): Step[] =>
  job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command);
const environmentName = (job: Job): string | undefined =>
  typeof job.environment === "string" ? job.environment : job.environment?.name;

describe("workflow files pass the GitHub workflow schema (action-validator)", () => {
  it("there are workflow files", () => assert.ok(files.length >= 2, files.join(", ")));
  for (const file of files) {
    it(`${file} is valid`, () => {
      const { status, output } = validate(join(workflowDir, file));
      assert.equal(status, 0, output);
    });
  }

  it("a broken workflow makes the validator fail (the check can fail)", () => {
    const dir = mkdtempSync(join(tmpdir(), "pms-workflow-"));
    try {
      const broken = join(dir, "broken.yml");
      // No runs-on, an unknown event and a non-boolean cancel-in-progress.
      writeFileSync(
        broken,
        "name: broken\non: [pusher]\njobs:\n  up:\n    concurrency:\n      group: x\n      cancel-in-progress: maybe\n    steps:\n      - run: pulumi up\n",
      );
      const { status, output } = validate(broken);
      assert.notEqual(status, 0);
      assert.match(output, /runs-on/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("pull request preview", () => {
  const { file, wf } = workflowOn("pull_request");
  const [jobName, job] = Object.entries(wf.jobs).find(([, j]) => pulumiSteps(j).length > 0) ?? [];

  it("has a matrix over the dev and prod stacks", () => {
    assert.ok(job, `${file} has a job running pulumi`);
    assert.deepEqual([...(job.strategy?.matrix?.stack ?? [])].sort(), ["dev", "prod"]);
  });

  it("runs `pulumi preview --diff` on the matrix stack, commented on the PR, with the policy pack", () => {
    const [step] = pulumiSteps(job!);
    assert.equal(step.with?.command, "preview");
    assert.equal(step.with?.["stack-name"], "${{ matrix.stack }}");
    assert.equal(step.with?.diff, true);
    assert.equal(step.with?.["comment-on-pr"], true);
    assert.equal(step.with?.policyPacks, "policy");
    assert.equal(step.with?.policyPackConfigs, "policy/config.json");
  });

  it("may write PR comments and request an OIDC token", () => {
    assert.equal(wf.permissions?.["pull-requests"], "write");
    assert.equal(wf.permissions?.["id-token"], "write");
    assert.ok(jobName);
  });
});

describe("deploy on merge to main", () => {
  const { wf } = workflowOn("push");
  const jobs = Object.values(wf.jobs);
  const upJob = (stack: string): Job => {
    const found = jobs.filter((j) =>
      pulumiSteps(j).some((s) => s.with?.command === "up" && s.with?.["stack-name"] === stack),
    );
    assert.equal(found.length, 1, `one job runs pulumi up on ${stack}`);
    return found[0];
  };

  it("triggers on pushes to main only", () => {
    assert.deepEqual((wf.on.push as { branches: string[] }).branches, ["main"]);
  });

  it("runs prod only after dev, behind the `production` environment (required reviewers)", () => {
    const prod = upJob("prod");
    assert.equal(environmentName(prod), "production");
    const devJobName = Object.entries(wf.jobs).find(([, j]) => j === upJob("dev"))?.[0];
    assert.ok(devJobName);
    assert.ok([prod.needs].flat().includes(devJobName), "prod needs the dev job");
    assert.notEqual(environmentName(upJob("dev")), "production");
  });

  it("runs one update per stack at a time and never cancels a running one", () => {
    const groups = ["dev", "prod"].map((stack) => {
      const c = upJob(stack).concurrency;
      assert.ok(c && typeof c === "object", `${stack} has a concurrency block`);
      assert.equal(c["cancel-in-progress"], false);
      assert.match(c.group, new RegExp(stack));
      return c.group;
    });
    assert.notEqual(groups[0], groups[1], "one group per stack");
  });

  it("enforces the policy pack on up too", () => {
    for (const stack of ["dev", "prod"]) {
      assert.equal(pulumiSteps(upJob(stack))[0].with?.policyPacks, "policy");
    }
  });

  it("requests an OIDC token", () => assert.equal(wf.permissions?.["id-token"], "write"));
});

describe("every workflow", () => {
  for (const file of files) {
    const wf = load(file);
    const steps = Object.values(wf.jobs).flatMap((j) => j.steps);

    it(`${file}: AWS access by OIDC role only, never long-lived keys`, () => {
      assert.doesNotMatch(
        text(file),
        /aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY/,
      );
      const aws = steps.filter((s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@"));
      assert.ok(aws.length > 0);
      for (const s of aws) assert.ok(s.with?.["role-to-assume"], "role-to-assume is set");
      assert.equal(wf.permissions?.["id-token"], "write");
    });

    it(`${file}: Node 20 with the npm cache, npm ci, actions pinned to a major version at least`, () => {
      const node = steps.filter((s) => s.uses?.startsWith("actions/setup-node@"));
      assert.ok(node.length > 0);
      for (const s of node) {
        assert.equal(String(s.with?.["node-version"]), "20");
        assert.equal(s.with?.cache, "npm");
      }
      assert.ok(steps.some((s) => s.run?.trim() === "npm ci"));
      for (const s of steps.filter((x) => x.uses)) assert.match(s.uses!, /@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/, s.uses);
    });

    it(`${file}: secrets reach run steps through env only and are never echoed`, () => {
      for (const s of steps.filter((x) => x.run)) {
        assert.doesNotMatch(s.run!, /\$\{\{\s*secrets\./, "no secret expression inside a script");
        assert.doesNotMatch(s.run!, /set -x|echo "?\$SSH_PRIVATE_KEY|echo "?\$PULUMI_CONFIG_PASSPHRASE/);
      }
      assert.doesNotMatch(text(file), /PULUMI_ACCESS_TOKEN/, "the S3 backend needs no Pulumi Cloud token");
    });
  }
});
