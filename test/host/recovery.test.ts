/**
 * docs/RUNBOOK.md's recovery procedures, executed as written through the real CLI, with
 * Debian's AWS CLI (`/usr/bin/aws`, package awscli) against Moto, ending with the host on the
 * restored secret; and `pulumi destroy`, which must leave hosts alone and schedule the
 * Secrets Manager secret for deletion with its recovery window.
 *
 * Each runbook command line is checked to be in RUNBOOK.md verbatim (with `--stack prod` and
 * placeholders substituted), then run by bash with `pulumi` (the real CLI) on PATH and `aws`
 * pointed at Moto. The state backend is a local directory instead of the runbook's S3 bucket,
 * so `aws s3 ls|cp s3://<state bucket>/X` runs as `ls|cp <backend dir>/X`.
 *
 *   node --import tsx --test test/host/recovery.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import {
  assertOk,
  AWS_CLI,
  changesOf,
  CliResult,
  commandSteps,
  operatorShell,
  PulumiStack,
  REPO,
  type ShellResult,
} from "./pulumi-cli";
import {
  appKeyFingerprint,
  ENV_FILE,
  envDiff,
  fleetConfig,
  hostFile,
  keyFingerprint,
  servicesState,
  unavailable,
} from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const RUNBOOK = path.join(REPO, "docs", "RUNBOOK.md");
const skip =
  unavailable(hostTestsUnavailableReason()) ??
  unavailable(fs.existsSync(AWS_CLI) ? undefined : `${AWS_CLI} is missing: apt-get install awscli`);
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

describe("runbook recovery procedures, real pulumi + awscli on Moto", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;
  let work: string;
  const runbook = fs.readFileSync(RUNBOOK, "utf8");
  const secretId = "pms-backend/dev";

  /**
   * Runs one runbook command line: it must appear in RUNBOOK.md as written (for stack prod);
   * it runs for this stack with `subs` applied to both.
   */
  const runbookCommand = async (
    line: string,
    subs: Record<string, string> = {},
    opts: { stdin?: string } = {},
  ): Promise<ShellResult> => {
    assert.ok(runbook.includes(line), `RUNBOOK.md no longer says: ${line}`);
    let cmd = line.replaceAll("--stack prod", `--stack ${stack.stack}`).replaceAll("pms-backend/prod", secretId);
    for (const [k, v] of Object.entries(subs)) cmd = cmd.replaceAll(k, v);
    return shell(cmd, opts.stdin);
  };

  /** An operator's bash line (see operatorShell), logged with its output. */
  const shell = async (script: string, stdin?: string): Promise<ShellResult> => {
    const r = await operatorShell(stack, script, stdin);
    log(`$ ${script}\n${r.stdout}${r.stderr}`);
    return r;
  };

  const ok = (r: ShellResult, what: string): string => {
    assert.equal(r.code, 0, `${what} failed:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const upWith = async (c: Record<string, unknown>, extra: string[] = []): Promise<CliResult> => {
    await stack.setConfig(c);
    return stack.up(extra);
  };

  before(async () => {
    fleet = await bootFleet(["solo"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log });
    work = path.join(stack.dir, "operator");
    fs.mkdirSync(work, { mode: 0o700 });
    config = fleetConfig(fleet, [host]);
    assertOk(await upWith(config));
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("§6 a rollout whose SSH session dropped finishes on the host while Pulumi keeps the old state; a reverted config then sees no changes, and `up --replace <rollout>` brings the host back in line", async () => {
    const env = config.env as Record<string, string>;
    // A changed value (not an added key: the script would refuse to drop a key it does not manage).
    await stack.setConfig({ ...config, env: { ...env, DEBUG: "True" } });
    const running = stack.up();
    // Once the worker runs on the host, cut the SSH session: kill the front end (the `bash -s`
    // the provider's session runs, exec'd into the agent's `python3 -I .../load.py`), found by its argv, by PID.
    let cut = "";
    const deadline = Date.now() + 120_000;
    while (cut === "" && Date.now() < deadline) {
      const ps = await fleet.exec(
        host,
        '[ -s /var/lib/pms-secrets/rollout.pid ] && ps -eo pid=,args= | awk \'$3 == "-I" && $4 ~ /load[.]py$/ && $6 == "--host" && $7 == "solo" {print $1}\' || true',
      );
      cut = ps.stdout.trim().split("\n")[0] ?? "";
      if (cut === "") await new Promise((res) => setTimeout(res, 200));
    }
    assert.match(cut, /^\d+$/, "the rollout's front end was found");
    await fleet.exec(host, `kill -KILL ${cut}`);
    const r = await running;
    assert.notEqual(r.code, 0, "the provider saw the session end");
    // The worker finishes on its own: the host gets the change, the state keeps the old env.
    const hasFlag = async (): Promise<boolean> =>
      /^DEBUG='True'$/m.test((await hostFile(fleet, host, ENV_FILE)).content);
    const until = Date.now() + 120_000;
    while (!(await hasFlag()) && Date.now() < until) await new Promise((res) => setTimeout(res, 1000));
    assert.ok(await hasFlag(), "the worker completed the rollout after the session dropped");
    assert.match(stack.sentEnvFile(host.name), /^DEBUG='False'$/m, "Pulumi recorded the old env");

    // The operator reverts the change: the real engine finds nothing to do; the host keeps it.
    await stack.setConfig(config);
    const reverted = await stack.up();
    assertOk(reverted);
    assert.deepEqual(commandSteps(reverted), [], "a reverted config re-runs nothing");
    assert.ok(await hasFlag(), "the host still runs the reverted setting while Pulumi believes it does not");

    // The runbook's step for an unknown outcome.
    const line =
      "pulumi up --stack prod --replace 'urn:pulumi:prod::pms-secrets::pms:secrets:HostRollout$command:remote:Command::<host>-rollout'";
    const fixed = await runbookCommand(line, {
      "<host>": host.name,
      "urn:pulumi:prod::": `urn:pulumi:${stack.stack}::`,
    });
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.ok(!(await hasFlag()), "the host is back on the config's env");
    await stack.exportState();
    assert.deepEqual(envDiff((await hostFile(fleet, host, ENV_FILE)).content, stack.sentEnvFile(host.name)), []);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")));
  });

  it("§7 a rotated SECRET_KEY is restored: checkpoint import, keeper reverted, `up --replace` re-delivers it; the host runs the old key again", async () => {
    const oldKey = stack.generatedValue("SECRET_KEY");
    assertOk(await upWith({ ...config, rotate: { SECRET_KEY: "2026-12-01" } }));
    const rotatedKey = stack.generatedValue("SECRET_KEY");
    assert.notEqual(rotatedKey, oldKey);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(rotatedKey));

    // The versions Secrets Manager keeps, and the previous document (into a private file).
    const versions = JSON.parse(
      ok(
        await runbookCommand(
          "aws secretsmanager list-secret-version-ids --secret-id pms-backend/prod --include-deprecated",
        ),
        "list-secret-version-ids",
      ),
    ) as { Versions: Array<{ VersionStages?: string[] }> };
    const stages = versions.Versions.flatMap((v) => v.VersionStages ?? []).sort();
    assert.deepEqual(stages, ["AWSCURRENT", "AWSPREVIOUS"]);
    ok(
      await runbookCommand(
        "( umask 077; aws secretsmanager get-secret-value --secret-id pms-backend/prod \\\n    --version-stage AWSPREVIOUS --query SecretString --output text > /tmp/pms-previous.json )",
        { "/tmp/pms-previous.json": path.join(work, "pms-previous.json") },
      ),
      "get-secret-value",
    );
    const previous = JSON.parse(fs.readFileSync(path.join(work, "pms-previous.json"), "utf8")) as Record<
      string,
      string
    >;
    assert.equal(previous.SECRET_KEY, oldKey, "AWSPREVIOUS holds the document from before the rotation");
    assert.equal((fs.statSync(path.join(work, "pms-previous.json")).mode & 0o777).toString(8), "600");

    // 1. Back up the current state. 2. Find the checkpoint of the update before the rotation.
    ok(await runbookCommand("pulumi stack export --stack prod --file now.json"), "stack export");
    const history = ok(await runbookCommand("pulumi stack history --stack prod"), "stack history");
    assert.match(history, /UpdateKind: update/);
    const backend = path.join(stack.dir, "backend");
    const bucket = "s3://<state bucket>/.pulumi/history/pms-secrets/prod/";
    const historyDir = `${backend}/.pulumi/history/pms-secrets/${stack.stack}/`;
    const listed = ok(
      await runbookCommand(`aws s3 ls ${bucket}`, { [`aws s3 ls ${bucket}`]: `ls ${historyDir}` }),
      "ls history",
    );
    const checkpoints = listed
      .split("\n")
      .filter((f) => f.endsWith(".checkpoint.json"))
      .sort();
    // Newest last: the rotation's checkpoint; the one before it is the first deploy's.
    assert.ok(checkpoints.length >= 2, `checkpoints: ${listed}`);
    const before = checkpoints[checkpoints.length - 2];
    const time = /^[a-z0-9-]+-(\d+)\.checkpoint\.json$/.exec(before)?.[1] ?? "";
    ok(
      await runbookCommand(`aws s3 cp ${bucket}prod-<time>.checkpoint.json before.checkpoint.json`, {
        [`aws s3 cp ${bucket}prod-<time>.checkpoint.json`]: `cp ${historyDir}${stack.stack}-${time}.checkpoint.json`,
      }),
      "copy checkpoint",
    );
    // 3. Importable form, imported.
    ok(
      await runbookCommand("jq '{version: 3, deployment: .checkpoint.latest}' before.checkpoint.json > before.json"),
      "jq",
    );
    ok(await runbookCommand("pulumi stack import --stack prod --file before.json"), "stack import");
    await stack.exportState();
    assert.equal(stack.generatedValue("SECRET_KEY"), oldKey, "the imported state holds the old key");

    // 4. The keeper commit reverted. 5. The real engine sees nothing to do: it cannot read a host back.
    await stack.setConfig(config);
    const preview = await stack.preview();
    assertOk(preview);
    assert.deepEqual(commandSteps(preview), [], "a plain preview finds nothing to re-deliver");
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(rotatedKey), "host still rotated");

    // ... so the runbook re-delivers explicitly.
    const version = stack.urn("store-version");
    const rollout = stack.urn("solo-rollout");
    assert.ok(
      runbook.includes(
        "--replace 'urn:pulumi:prod::pms-secrets::pms:secrets:SecretStore$aws:secretsmanager/secretVersion:SecretVersion::store-version'",
      ),
    );
    assert.ok(
      runbook.includes(
        "--replace 'urn:pulumi:prod::pms-secrets::pms:secrets:HostRollout$command:remote:Command::<host>-rollout'",
      ),
    );
    const r = await stack.up(["--replace", version, "--replace", rollout]);
    assertOk(r);
    assert.deepEqual(
      commandSteps(r).filter((s) => s.startsWith("create")),
      ["create-replacement solo-rollout"],
    );
    assert.equal(stack.generatedValue("SECRET_KEY"), oldKey);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(oldKey), "host back on the old key");
    assert.deepEqual(envDiff((await hostFile(fleet, host, ENV_FILE)).content, stack.sentEnvFile(host.name)), []);
    const current = ok(
      await shell(`aws secretsmanager get-secret-value --secret-id ${secretId} --query SecretString --output text`),
      "get current",
    );
    assert.equal(
      (JSON.parse(current) as Record<string, string>).SECRET_KEY,
      oldKey,
      "AWSCURRENT is the restored document",
    );
    // And the next plain run is a no-op.
    const again = await stack.up();
    assertOk(again);
    assert.deepEqual(commandSteps(again), []);
  });

  it("§7 a supplied secret is restored from AWSPREVIOUS through `config set --secret` on stdin", async () => {
    const secrets = config.secrets as Record<string, string>;
    const original = secrets.PAYSTACK_SECRET_KEY;
    assertOk(await upWith({ ...config, secrets: { ...secrets, PAYSTACK_SECRET_KEY: "sk_test_rotated_at_provider" } }));
    assert.match(
      (await hostFile(fleet, host, ENV_FILE)).content,
      /^PAYSTACK_SECRET_KEY='sk_test_rotated_at_provider'$/m,
    );
    ok(
      await runbookCommand(
        "( umask 077; aws secretsmanager get-secret-value --secret-id pms-backend/prod \\\n    --version-stage AWSPREVIOUS --query SecretString --output text > /tmp/pms-previous.json )",
        { "/tmp/pms-previous.json": path.join(work, "pms-previous.json") },
      ),
      "get-secret-value",
    );
    ok(
      await runbookCommand(
        "jq -r .PAYSTACK_SECRET_KEY /tmp/pms-previous.json | pulumi config set --stack prod --secret --path 'secrets.PAYSTACK_SECRET_KEY'",
        { "/tmp/pms-previous.json": path.join(work, "pms-previous.json") },
      ),
      "config set from the file",
    );
    assert.doesNotMatch(stack.stackFile(), new RegExp(original), "set as a secret");
    const r = await stack.up();
    assertOk(r);
    assert.match(
      (await hostFile(fleet, host, ENV_FILE)).content,
      new RegExp(`^PAYSTACK_SECRET_KEY='${original}'$`, "m"),
    );
    // The harness's own view of the config is stale now: bring it back in line for the next test.
    await stack.setConfig({ ...config, secrets: { ...secrets, PAYSTACK_SECRET_KEY: "sk_test_rotated_at_provider" } });
    await stack.setConfig(config);
  });

  it("`pulumi destroy`: the env file and services stay on the host, the secret is scheduled for deletion with the stack's recovery window", async () => {
    const envBefore = await hostFile(fleet, host, ENV_FILE);
    const r = await stack.destroy();
    assertOk(r);
    assert.ok((changesOf(r).delete ?? 0) >= 5, JSON.stringify(changesOf(r)));
    const envAfter = await hostFile(fleet, host, ENV_FILE);
    assert.deepEqual(envAfter, envBefore, "the env file is untouched");
    for (const [svc, u] of Object.entries(await servicesState(fleet, host))) assert.equal(u.activeState, "active", svc);
    assert.equal((await fleet.http(host, "/health/")).status, 200);
    const described = JSON.parse(
      ok(await shell(`aws secretsmanager describe-secret --secret-id ${secretId}`), "describe-secret"),
    ) as { DeletedDate?: string | number };
    assert.ok(described.DeletedDate !== undefined, "the secret is scheduled for deletion");
    const deletedAt =
      typeof described.DeletedDate === "number" ? described.DeletedDate * 1000 : Date.parse(described.DeletedDate);
    const days = (deletedAt - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7.01, `deletion in ${days.toFixed(2)} days, expected dev's 7-day window`);
    const read = await shell(`aws secretsmanager get-secret-value --secret-id ${secretId}`);
    assert.notEqual(read.code, 0, "a secret scheduled for deletion cannot be read");
    assert.match(read.stderr, /marked for deletion|InvalidRequestException/);
    assert.deepEqual(stack.leaks(), []);
  });
});
