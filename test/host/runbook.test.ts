/**
 * docs/RUNBOOK.md's operator procedures, run as written through the real `pulumi` CLI against
 * two real hosts (web1, web2) and one `prod` stack, in the order an operator meets them:
 * first-time setup from the shipped Pulumi.prod.yaml (deploy login through the runbook's sudoers
 * line, host key pinned with `ssh-keyscan -p`), adding a host, routine rotations (two on the same
 * day with the keeper counter, retiring the fallback), a failed rollout and its recovery, the
 * emergency story, the troubleshooting commands, removing a host and cleaning it up; and the
 * README's `npm run dev-env`.
 *
 * Each runbook command line is checked to be in RUNBOOK.md verbatim, then run by bash with the
 * real `pulumi` on PATH and Debian's `aws` pointed at Moto; host-side commands run as root over
 * ssh. Placeholders are substituted (addresses and ports of the test hosts, the policy pack's
 * absolute path). One fleet and one stack serve every case, so the cases run in order.
 *
 *   node --import tsx --test test/host/runbook.test.ts     (root, Linux, awscli)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { parseEnvFile } from "../../components/env-file";
import {
  assertOk,
  AWS_CLI,
  changesOf,
  CliResult,
  commandSteps,
  operatorShell,
  processesWithEnv,
  PulumiStack,
  ran,
  REPO,
  type ShellResult,
} from "./pulumi-cli";
import {
  appKeyFingerprint,
  ENV_FILE,
  envDiff,
  hostFile,
  keyFingerprint,
  servicesState,
  unavailable,
  type UnitState,
} from "./scenario";
import {
  bootFleet,
  hostTestsUnavailableReason,
  PUBLIC_HOST,
  TEST_DB,
  TestFleet,
  TestHost,
  verboseLog,
} from "./testhost";

const RUNBOOK = fs.readFileSync(path.join(REPO, "docs", "RUNBOOK.md"), "utf8");
const README = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
const POLICY = path.join(REPO, "policy");
const skip =
  unavailable(hostTestsUnavailableReason()) ??
  unavailable(fs.existsSync(AWS_CLI) ? undefined : `${AWS_CLI} is missing: apt-get install awscli`);
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

describe("runbook procedures, real pulumi + awscli on Moto, two hosts", { skip }, () => {
  let fleet: TestFleet;
  let web1: TestHost;
  let web2: TestHost;
  let stack: PulumiStack;
  /** Everything the operator's shell printed (scanned for secrets at the end). */
  const shellOutput: string[] = [];
  const policyArgs = (): string[] => [
    "--policy-pack",
    POLICY,
    "--policy-pack-config",
    path.join(POLICY, "config.json"),
  ];

  /** An operator's bash line (see operatorShell); its output is logged and kept for the leak check. */
  const shell = async (script: string, stdin?: string): Promise<ShellResult> => {
    const r = await operatorShell(stack, script, stdin);
    shellOutput.push(r.stdout + r.stderr);
    log(`$ ${script}\n${r.stdout}${r.stderr}`);
    return r;
  };

  /** Runs a runbook command line (it must be in RUNBOOK.md as written) with `subs` applied. */
  const runbookCommand = async (line: string, subs: Record<string, string> = {}, stdin?: string): Promise<string> => {
    assert.ok(RUNBOOK.includes(line), `RUNBOOK.md no longer says: ${line}`);
    let cmd = line;
    for (const [k, v] of Object.entries(subs)) cmd = cmd.replaceAll(k, v);
    const r = await shell(cmd, stdin);
    assert.equal(r.code, 0, `${cmd} failed:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  /** A host-side runbook block (lines as written), run by bash as root on `host`. */
  const onHost = async (host: TestHost, block: string, subs: Record<string, string> = {}): Promise<string> => {
    assert.ok(RUNBOOK.includes(block), `RUNBOOK.md no longer says:\n${block}`);
    let script = block;
    for (const [k, v] of Object.entries(subs)) script = script.replaceAll(k, v);
    const r = await fleet.exec(host, "bash -euo pipefail -s", { stdin: script });
    shellOutput.push(r.stdout + r.stderr);
    assert.equal(r.code, 0, `on ${host.name}:\n${script}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  const up = async (extra: string[] = []): Promise<CliResult> => stack.up([...policyArgs(), ...extra]);

  /** Asserts `host` runs what the state says it was sent: env file, units, the running key, health. */
  const assertDeployed = async (host: TestHost): Promise<void> => {
    const env = await hostFile(fleet, host, ENV_FILE);
    assert.deepEqual(envDiff(env.content, stack.sentEnvFile(host.name)), [], `${host.name}: env file`);
    assert.deepEqual([env.mode, env.owner], ["600", "root:root"], `${host.name}: env file mode`);
    for (const [svc, u] of Object.entries(await servicesState(fleet, host))) {
      assert.equal(u.activeState, "active", `${host.name} ${svc}`);
    }
    assert.equal(
      (await appKeyFingerprint(fleet, host)).secret_key,
      keyFingerprint(stack.generatedValue("SECRET_KEY")),
      `${host.name}: running key`,
    );
    assert.equal((await fleet.http(host, "/health/")).status, 200, `${host.name}: health`);
  };

  /** Main PIDs of the services: unchanged PIDs = not restarted. */
  const pids = async (host: TestHost): Promise<Record<string, number>> =>
    Object.fromEntries(
      Object.entries(await servicesState(fleet, host)).map(([svc, u]: [string, UnitState]) => [svc, u.mainPid]),
    );

  /** The host key as `ssh-keyscan -t ed25519 -p PORT ADDRESS` prints it, reduced to "type base64". */
  const keyscan = async (host: TestHost): Promise<string> => {
    const out = await runbookCommand("ssh-keyscan -t ed25519 -p 2222 web1.internal", {
      "2222": String(host.sshPort),
      "web1.internal": host.address,
    });
    const line = out.split("\n").find((l) => l.startsWith(`[${host.address}]:${host.sshPort} ssh-ed25519 `));
    assert.ok(line, `ssh-keyscan printed [address]:port ssh-ed25519 ...: ${out}`);
    // Out of band (the host's console: here root over the test's pinned ssh) vs what the network showed.
    const console = await fleet.exec(host, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    const scanned = await runbookCommand("ssh-keyscan -t ed25519 web1.internal | ssh-keygen -lf -", {
      "ssh-keyscan -t ed25519 web1.internal": `ssh-keyscan -t ed25519 -p ${host.sshPort} ${host.address}`,
    });
    const sha = (s: string): string => /SHA256:[A-Za-z0-9+/]+/.exec(s)?.[0] ?? "none";
    assert.equal(sha(scanned), sha(console.stdout), "fingerprints match");
    return line.split(" ").slice(1, 3).join(" ");
  };

  before(async () => {
    fleet = await bootFleet(["web1", "web2"], log, { httpHost: "public" });
    [web1, web2] = fleet.hosts as [TestHost, TestHost];
    stack = await PulumiStack.create({ stack: "prod", log });
    stack.noteSecret(fleet.privateKey);
    stack.noteSecret(TEST_DB.password);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("§2 first-time setup as written: shipped Pulumi.prod.yaml, config set lines, secrets on stdin, host key pinned with ssh-keyscan -p and checked against the host's own fingerprint, preview with the policy pack, first up through the deploy login", async () => {
    // The operator's account has a customer-managed KMS key with the alias the runbook uses.
    const key = await shell("aws kms create-key --description pms-secrets --query KeyMetadata.KeyId --output text");
    assert.equal(key.code, 0, key.stderr);
    assert.equal(
      (await shell(`aws kms create-alias --alias-name alias/pms-backend-prod --target-key-id ${key.stdout.trim()}`))
        .code,
      0,
    );

    // 1. The state bucket (versioned, as section 1 asks) and the prod stack's own KMS key. Then, on
    // the shipped Pulumi.prod.yaml, the runbook's login and stack init lines as written: from here
    // on every step of this file runs on the S3 backend with the awskms secrets provider (Moto is
    // S3 and KMS; the CLI reaches it through AWS_ENDPOINT_URL, the URLs are the runbook's).
    for (const cmd of [
      "aws s3api create-bucket --bucket pms-state --create-bucket-configuration LocationConstraint=eu-west-1",
      "aws s3api put-bucket-versioning --bucket pms-state --versioning-configuration Status=Enabled",
    ]) {
      const r = await shell(cmd);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    }
    const stateKey = await shell(
      "aws kms create-key --description pulumi-state --query KeyMetadata.KeyId --output text",
    );
    assert.equal(stateKey.code, 0, stateKey.stderr);
    const alias = `aws kms create-alias --alias-name alias/pulumi-pms-secrets-prod --target-key-id ${stateKey.stdout.trim()}`;
    assert.equal((await shell(alias)).code, 0);
    stack.writeStackFile(fs.readFileSync(path.join(REPO, "Pulumi.prod.yaml"), "utf8"));
    await runbookCommand("pulumi login 's3://<state bucket>?region=<region>'", {
      "<state bucket>": "pms-state",
      "<region>": "eu-west-1",
    });
    await runbookCommand(
      "pulumi stack init prod --secrets-provider 'awskms://alias/pulumi-pms-secrets-prod?region=<region>'",
      { "<region>": "eu-west-1" },
    );
    assert.match(
      stack.stackFile(),
      /^secretsprovider: awskms:\/\/alias\/pulumi-pms-secrets-prod\?region=eu-west-1\nencryptedkey: \S+\n/m,
      "stack init wrote the KMS provider into the shipped file",
    );
    const subs = { "<region>": "eu-west-1", "web1.internal": web1.address, "api.example.com": PUBLIC_HOST };
    for (const line of [
      "pulumi config set --stack prod aws:region <region>",
      "pulumi config set --stack prod --path 'app.dir' /srv/pms-backend",
      "pulumi config set --stack prod --path 'app.healthUrl' http://127.0.0.1:8000/health/",
      "pulumi config set --stack prod --path 'hosts[0].name' web1",
      "pulumi config set --stack prod --path 'hosts[0].address' web1.internal",
      "pulumi config set --stack prod --path 'hosts[0].user' deploy",
      "pulumi config set --stack prod --path 'env.DEBUG' False",
      "pulumi config set --stack prod --path 'env.ALLOWED_HOSTS' api.example.com",
      "pulumi config set --stack prod --path 'env.DB_NAME' poultry_db",
      "pulumi config set --stack prod kmsKeyId 'alias/pms-backend-prod'",
      'pulumi config set --stack prod rotation "$(date -u +%F)"',
    ]) {
      await runbookCommand(line, subs);
    }
    // The test host's sshd is forwarded to another port (hosts[].port, as section 2.4 says), and
    // units are watched 2 s instead of the default 5 to keep this file's runtime down.
    assert.equal((await shell(`pulumi config set --stack prod --path 'hosts[0].port' ${web1.sshPort}`)).code, 0);
    assert.equal((await shell("pulumi config set --stack prod --path 'app.stableSeconds' 2")).code, 0);

    // 1. Deploy key: into an SSH agent, never into the stack config. The section's lines as written
    // in one operator shell (the agent they start is ended there by its own `ssh-agent -k`, i.e.
    // by $SSH_AGENT_PID, also when a line fails).
    const agentLines = ['eval "$(ssh-agent -s)"', "ssh-add ~/.ssh/pms_deploy_prod", "ssh-add -l", "ssh-agent -k"];
    for (const l of agentLines) assert.ok(RUNBOOK.includes(l), `RUNBOOK.md no longer says: ${l}`);
    const session = await shell(
      // The agent removes its socket when it ends: a socket left means a line failed before `-k`.
      `trap 'if [ -S "\${SSH_AUTH_SOCK:-}" ]; then ssh-agent -k >/dev/null 2>&1 || true; fi' EXIT\n` +
        agentLines.join("\n").replaceAll("~/.ssh/pms_deploy_prod", fleet.privateKeyPath),
    );
    assert.equal(session.code, 0, session.stderr);
    assert.match(session.stdout, /256 SHA256:\S+ pms-testhost-client \(ED25519\)/, "ssh-add -l lists the deploy key");
    // The stack's own agent stands in for that shell's from here on (every pulumi call gets its
    // SSH_AUTH_SOCK); the key goes in with the runbook's line, as written.
    await stack.useAgent();
    await runbookCommand("ssh-add ~/.ssh/pms_deploy_prod", { "~/.ssh/pms_deploy_prod": fleet.privateKeyPath });
    // 3. Secrets typed or piped, at the prompt (stdin here).
    const supplied: Record<string, string> = {
      DB_PASSWORD: TEST_DB.password,
      HUBTEL_CLIENT_ID: "hubtel-runbook-client-id",
      HUBTEL_CLIENT_SECRET: "hubtel-runbook-client-secret",
      PAYSTACK_SECRET_KEY: "sk_test_runbook_paystack_0123456789",
    };
    for (const [k, v] of Object.entries(supplied)) {
      stack.noteSecret(v);
      await runbookCommand(`pulumi config set --stack prod --secret --path 'secrets.${k}'`, {}, `${v}\n`);
    }
    // 4. Pin the host key: scanned, compared out of band, then set (type and base64 only).
    const hostKey = await keyscan(web1);
    assert.equal(hostKey, web1.hostKey);
    await runbookCommand("pulumi config set --stack prod --path 'hosts[0].hostKey' 'ssh-ed25519 AAAA...'", {
      "'ssh-ed25519 AAAA...'": `'${hostKey}'`,
    });
    const file = stack.stackFile();
    assert.doesNotMatch(file, /REPLACE-with/, "no placeholder value left");
    for (const v of [...Object.values(supplied), fleet.privateKey.split("\n")[1]]) assert.ok(!file.includes(v));

    // 6. The preview the PR shows, with the policy pack: one rollout to create, no violation.
    const previewLine =
      "pulumi preview --stack prod --diff --policy-pack policy --policy-pack-config policy/config.json";
    assert.ok(RUNBOOK.includes(previewLine));
    const preview = assertOk(await stack.preview(policyArgs()));
    assert.deepEqual(commandSteps(preview), ["create web1-rollout"]);
    assert.doesNotMatch(preview.output, /mandatory/);
    const r = assertOk(await up());
    assert.deepEqual(ran(r), ["create web1-rollout"]);
    await assertDeployed(web1);
    assert.match(r.output, /worker: pms-rollout-/, "the rollout ran as root through deploy's sudo");
    // The state lives in the bucket, versioned (section 7's backup); secrets decrypt through KMS.
    const versions = await shell(
      "aws s3api list-object-versions --bucket pms-state --prefix .pulumi/stacks/pms-secrets/prod.json --query 'length(Versions)'",
    );
    assert.equal(versions.code, 0, versions.stderr);
    assert.ok(Number(versions.stdout.trim()) >= 2, `state versions kept in the bucket: ${versions.stdout}`);
    // Compared by hash, so the value itself never reaches the recorded shell output.
    const decrypted = await shell(
      "set -o pipefail; pulumi config get --stack prod --path 'secrets.HUBTEL_CLIENT_ID' | tr -d '\\n' | sha256sum",
    );
    assert.equal(decrypted.code, 0, decrypted.stderr);
    assert.equal(
      decrypted.stdout.split(" ")[0],
      createHash("sha256").update(supplied.HUBTEL_CLIENT_ID).digest("hex"),
      "the awskms provider decrypts the stack's secrets",
    );
  });

  it("§5 adding a host: the preview shows the new host's -accept and -rollout (and, the stack now a fleet, web1-accept), `up` creates only them, the other host is not restarted", async () => {
    const before1 = await pids(web1);
    const env1 = await hostFile(fleet, web1, ENV_FILE);
    const hostKey = await keyscan(web2);
    for (const [k, v] of Object.entries({
      name: web2.name,
      address: web2.address,
      port: String(web2.sshPort),
      user: "deploy",
      hostKey,
    })) {
      assert.equal((await shell(`pulumi config set --stack prod --path 'hosts[1].${k}' '${v}'`)).code, 0);
    }
    const preview = assertOk(await stack.preview(policyArgs()));
    const created = ["create web1-accept", "create web2-accept", "create web2-rollout"];
    assert.deepEqual(commandSteps(preview).sort(), created);
    // Created: the new host's HostRollout component and its command, and both hosts' SecretKeyAccept
    // components and their commands (two hosts: two SECRET_KEY phases); nothing else changes.
    const { same: _same, ...changes } = changesOf(preview);
    assert.deepEqual(changes, { create: 6 });
    const r = assertOk(await up());
    assert.deepEqual(ran(r).sort(), created);
    await assertDeployed(web2);
    assert.deepEqual(await pids(web1), before1, "web1 not restarted");
    assert.deepEqual(await hostFile(fleet, web1, ENV_FILE), env1, "web1's env file untouched");
  });

  it("§3 routine rotation: a changed keeper rotates; the same date again does nothing; a second rotation that day adds a counter (2026-11-25.2), which the policy pack reads as a date", async () => {
    const first = stack.generatedValue("SECRET_KEY");
    const line = "pulumi config set --stack prod --path 'rotate.SECRET_KEY' 2026-11-25";
    await runbookCommand(line);
    const r1 = assertOk(await up());
    const bothPhases = [
      "create-replacement web1-accept",
      "create-replacement web1-rollout",
      "create-replacement web2-accept",
      "create-replacement web2-rollout",
    ];
    assert.deepEqual(ran(r1).sort(), bothPhases);
    const second = stack.generatedValue("SECRET_KEY");
    assert.notEqual(second, first);
    for (const h of [web1, web2]) {
      await assertDeployed(h);
      assert.deepEqual(
        (await appKeyFingerprint(fleet, h)).fallbacks,
        [keyFingerprint(first)],
        `${h.name} keeps one fallback`,
      );
    }
    assert.match(
      r1.output,
      /secret key: changes; the host's previous key is kept as a fallback \(1\s+kept, at most 1\)/,
    );

    await runbookCommand(line);
    const same = assertOk(await up());
    assert.deepEqual(ran(same), [], "setting the same date again rotates nothing");
    assert.equal(stack.generatedValue("SECRET_KEY"), second);

    assert.ok(RUNBOOK.includes("A second rotation on\n   the same day adds a counter: `2026-11-25.2`"));
    await runbookCommand(line, { "2026-11-25": "2026-11-25.2" });
    const r2 = assertOk(await up());
    assert.equal(ran(r2).length, 4, "both hosts rolled again, in both phases");
    const third = stack.generatedValue("SECRET_KEY");
    assert.notEqual(third, second);
    // The advisory keeper-age policy judged the counter keeper as a date (no "cannot be judged").
    assert.doesNotMatch(r2.output, /cannot be judged/);
    for (const h of [web1, web2]) await assertDeployed(h);
    stack.noteSecret(first);
    stack.noteSecret(second);
  });

  it("§3.5 retiring the fallback: the preview shows --secret-key-fallbacks 0 and the retired output; the hosts drop the list and keep the key; set back to 1", async () => {
    const key = stack.generatedValue("SECRET_KEY");
    await runbookCommand("pulumi config set secretKeyFallbacks 0 --stack prod");
    const preview = assertOk(await stack.preview(policyArgs()));
    assert.match(preview.output, /--secret-key-fallbacks 0/);
    assert.match(preview.output, /secretKeyRotation[^\n]*"graceful fallbacks retired/);
    assertOk(await up());
    assert.equal(stack.generatedValue("SECRET_KEY"), key);
    for (const h of [web1, web2]) {
      assert.deepEqual((await appKeyFingerprint(fleet, h)).fallbacks, [], `${h.name}: no fallback`);
      await assertDeployed(h);
    }
    assert.equal((await shell("pulumi config set secretKeyFallbacks 1 --stack prod")).code, 0);
  });

  it("§6 a failed rollout (a supplied DB password delivered before PostgreSQL has it): FAILED line names host, service and check, the host is back on its previous env, later hosts untouched; read the logs, fix (the password in PostgreSQL, as §4.3 does it), re-run", async () => {
    const newPassword = "pms-db-runbook-rotated-4242";
    stack.noteSecret(newPassword);
    const before1 = await hostFile(fleet, web1, ENV_FILE);
    const before2 = await hostFile(fleet, web2, ENV_FILE);
    const pids2 = await pids(web2);
    await runbookCommand(
      "pulumi config set --stack prod --secret --path 'secrets.DB_PASSWORD'",
      {},
      `${newPassword}\n`,
    );
    const failed = await up();
    assert.notEqual(failed.code, 0);
    assert.match(
      failed.output,
      /pms-rollout FAILED host=web1 service=pms-backend check=health-url: .*previous env restored/,
    );
    assert.deepEqual(ran(failed), ["create-replacement web1-accept FAILED"], "web1 failed, web2 not touched");
    // The host is on its previous env and healthy; web2 untouched.
    assert.equal((await hostFile(fleet, web1, ENV_FILE)).content, before1.content);
    assert.equal((await fleet.http(web1, "/health/")).status, 200);
    assert.deepEqual(await hostFile(fleet, web2, ENV_FILE), before2);
    assert.deepEqual(await pids(web2), pids2);

    // 1. Read the logs the runbook names: the services' and the rollout unit's own.
    const unit = /worker: (pms-rollout-[A-Za-z0-9_-]+) runs the rollout/.exec(failed.output)?.[1];
    assert.ok(unit, "the rollout names its own unit");
    const journal = await onHost(web1, "journalctl -u pms-backend -u celery-pms --since -30min");
    assert.match(journal, /gunicorn|celery/i);
    const own = await fleet.exec(web1, `journalctl -u ${unit} --no-pager -o cat`);
    assert.match(own.stdout, /health/);
    assert.ok(!own.stdout.includes(newPassword), "the rollout's journal holds no secret");
    shellOutput.push(own.stdout);

    // 2. Fix: the password changed in PostgreSQL on each host, typed at psql's \password prompt.
    assert.ok(RUNBOOK.includes("(`\\password pms` in `sudo -u postgres psql`, never on a command line)"));
    for (const h of [web1, web2]) {
      const r = await fleet.exec(h, "sudo -u postgres psql -X -q", {
        stdin: `\\password pms\n${newPassword}\n${newPassword}\n`,
      });
      shellOutput.push(r.stdout + r.stderr);
      assert.equal(r.code, 0, r.stderr);
      const hist = await fleet.exec(
        h,
        `grep -rlF '${newPassword.slice(0, 12)}' /var/lib/postgresql /var/log/postgresql || true`,
      );
      assert.equal(hist.stdout.trim(), "", `${h.name}: the password is in no PostgreSQL file in clear`);
    }
    // 3. Re-run with the same config: the failed host runs again (its state still differs), then web2.
    const fixed = assertOk(await up());
    assert.deepEqual(ran(fixed).sort(), [
      "create-replacement web1-accept",
      "create-replacement web1-rollout",
      "create-replacement web2-accept",
      "create-replacement web2-rollout",
    ]);
    for (const h of [web1, web2]) {
      await assertDeployed(h);
      assert.equal(parseEnvFile((await hostFile(fleet, h, ENV_FILE)).content).DB_PASSWORD, newPassword);
    }
  });

  it("§4 emergency rotation: one keeper change; the preview shows --emergency, EMERGENCY and the warning; no fallback; backups purged; the old version's AWSPREVIOUS label removed (step 5); a re-run changes nothing", async () => {
    const before = stack.generatedValue("SECRET_KEY");
    await runbookCommand("pulumi config set --path 'rotate.SECRET_KEY' emergency-2026-11-26 --stack prod");
    const preview = assertOk(await stack.preview(policyArgs()));
    assert.match(preview.output, /--emergency/);
    assert.match(preview.output, /EMERGENCY \(rotate\.SECRET_KEY\)/);
    assert.match(preview.output, /keep NO fallback/);
    const r = assertOk(await up());
    assert.equal(ran(r).length, 2);
    assert.equal((r.output.match(/purge: removed \d+ backup generations/g) ?? []).length, 2, "each host purged");
    assert.doesNotMatch(r.output, /cannot be judged/, "the emergency keeper is read as a date");
    const after = stack.generatedValue("SECRET_KEY");
    assert.notEqual(after, before);
    stack.noteSecret(before);
    for (const h of [web1, web2]) {
      await assertDeployed(h);
      assert.deepEqual((await appKeyFingerprint(fleet, h)).fallbacks, [], `${h.name}: no fallback`);
      const left = await fleet.exec(
        h,
        `grep -rlF '${before}' /var/lib/pms-secrets /srv/pms-backend /etc/systemd || true`,
      );
      assert.equal(left.stdout.trim(), "", `${h.name}: no file holds the compromised key`);
    }
    // 5. Revoke the old secret version: AWSPREVIOUS still holds the compromised document.
    const secretId = "pms-backend/prod";
    const versions = JSON.parse(
      await runbookCommand(
        "aws secretsmanager list-secret-version-ids --secret-id pms-backend/prod --include-deprecated",
      ),
    ) as { Versions: Array<{ VersionId: string; VersionStages?: string[] }> };
    const previous = versions.Versions.find((v) => v.VersionStages?.includes("AWSPREVIOUS"));
    assert.ok(previous, "AWSPREVIOUS exists after the rotation");
    const revoke =
      "aws secretsmanager update-secret-version-stage --secret-id pms-backend/prod --version-stage AWSPREVIOUS --remove-from-version-id <version id>";
    await runbookCommand(revoke, { "<version id>": previous.VersionId });
    const after5 = JSON.parse(
      (await shell(`aws secretsmanager list-secret-version-ids --secret-id ${secretId} --include-deprecated`)).stdout,
    ) as { Versions: Array<{ VersionStages?: string[] }> };
    assert.deepEqual(
      after5.Versions.flatMap((v) => v.VersionStages ?? []),
      ["AWSCURRENT"],
    );
    const again = assertOk(await up());
    assert.deepEqual(ran(again), [], "a re-run after the revocation changes nothing");
  });

  it("§6 the CLI itself killed mid-rollout (a lost runner): the next up names the stale lock; `pulumi cancel`, `refresh --clear-pending-creates` and `up --replace <rollout>` bring every host in line", async () => {
    const before = stack.generatedValue("SECRET_KEY");
    await runbookCommand("pulumi config set --stack prod --path 'rotate.SECRET_KEY' 2026-11-25", {
      "2026-11-25": "2026-11-27",
    });
    // The runner dies: SIGKILL to the CLI's whole process group (started here, killed by its id)
    // once web1's rollout worker holds the host lock.
    const cli = spawn(path.join(stack.bin, "pulumi"), ["up", "--yes", "--non-interactive", "--stack", "prod"], {
      cwd: stack.workspace,
      env: stack.env(),
      stdio: "ignore",
      detached: true,
    });
    const exited = new Promise<void>((res) => cli.once("exit", () => res()));
    const deadline = Date.now() + 180_000;
    let holding = false;
    while (!holding && Date.now() < deadline) {
      holding =
        (await fleet.exec(web1, "test -s /var/lib/pms-secrets/rollout.pid && echo yes || true")).stdout.trim() ===
        "yes";
      if (!holding) await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(holding, "web1's rollout started");
    process.kill(-(cli.pid ?? 0), "SIGKILL");
    await exited;
    // What the runbook says outlives the CLI does (its plugins, each in its own process group),
    // and its `ps` line lists every one of them; the operator ends them by PID, as done here.
    const home = `PULUMI_HOME=${stack.env().PULUMI_HOME}`;
    const exe = (pid: number): string => {
      try {
        return fs.readlinkSync(`/proc/${pid}/exe`);
      } catch {
        return "";
      }
    };
    const plugins = processesWithEnv(home).filter((pid) => /\/pulumi-(language|resource)-[a-z]+$/.test(exe(pid)));
    assert.ok(plugins.length >= 2, `the killed CLI's plugins are still running: ${plugins.join(" ")}`);
    const listed = await runbookCommand(
      "ps -o pid,etime,args -C pulumi-language-nodejs,pulumi-resource-command,pulumi-resource-random,pulumi-resource-aws",
    );
    for (const pid of plugins) {
      assert.match(listed, new RegExp(`^\\s*${pid}\\s`, "m"), `the runbook's ps line lists plugin pid ${pid}`);
      process.kill(pid, "SIGKILL");
    }
    // The host's worker finishes on its own (or rolls back): wait until it lets go of the lock.
    const until = Date.now() + 180_000;
    while (Date.now() < until) {
      const r = await fleet.exec(web1, "flock -n /var/lib/pms-secrets/lock true && echo free || true");
      if (r.stdout.trim() === "free") break;
      await new Promise((res) => setTimeout(res, 1000));
    }

    const locked = await up();
    assert.notEqual(locked.code, 0);
    assert.match(locked.output, /the stack is currently locked by 1 lock\(s\)/);
    assert.deepEqual(ran(locked), [], "nothing runs while the stale lock is there");
    await runbookCommand("pulumi cancel --stack prod");
    await runbookCommand("pulumi refresh --clear-pending-creates --stack prod");
    await stack.exportState();
    await runbookCommand(
      "pulumi up --stack prod --replace 'urn:pulumi:prod::pms-secrets::pms:secrets:HostRollout$command:remote:Command::<host>-rollout'",
      { "<host>": web1.name },
    );
    await stack.exportState();
    const after = stack.generatedValue("SECRET_KEY");
    assert.notEqual(after, before, "the interrupted rotation completed");
    for (const h of [web1, web2]) await assertDeployed(h);
    const again = assertOk(await up());
    assert.deepEqual(ran(again), [], "a re-run changes nothing");
    stack.noteSecret(before);
  });

  it("§9 troubleshooting commands run as written on a deployed host", async () => {
    const cat = await onHost(web1, "systemctl cat pms-backend");
    assert.match(cat, new RegExp(`^EnvironmentFile=${ENV_FILE}$`, "m"));
    const check = await onHost(
      web1,
      "sudo systemd-run --quiet --wait --pipe --collect -p User=<app user> -p WorkingDirectory=/srv/pms-backend -p EnvironmentFile=/etc/pms-backend/.env.production -- /srv/pms-backend/venv/bin/python manage.py check",
      { "<app user>": "pms" },
    );
    assert.match(check, /System check identified no issues/);
    const denied = await fleet.exec(web1, `sudo -u pms cat ${ENV_FILE}`);
    assert.notEqual(denied.code, 0, "sudo -u <app user> cannot read the 0600 root file");
    assert.equal((await onHost(web1, "sudo grep -c '^SECRET_KEY=' <envFile>", { "<envFile>": ENV_FILE })).trim(), "1");
    assert.equal((await onHost(web1, "systemctl show pms-backend -p Environment")).trim(), "Environment=");
    const listed = await fleet.exec(web1, "sudo -n -l /bin/bash -s -- --host x", { user: "deploy" });
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(RUNBOOK.includes("`sudo -n -l /bin/bash -s -- --host x`"));
    assert.equal(listed.stdout.trim(), "/bin/bash -s -- --host x");
    await onHost(web1, "systemctl reset-failed pms-backend celery-pms");
  });

  it("§5 removing a host: `up` deletes its rollout and runs nothing there (env file stays, app keeps running); the runbook's cleanup then removes every file the program wrote", async () => {
    const env2 = await hostFile(fleet, web2, ENV_FILE);
    const pids1 = await pids(web1);
    assert.equal((await shell("pulumi config rm --stack prod --path 'hosts[1]'")).code, 0);
    const r = assertOk(await up());
    assert.deepEqual(commandSteps(r).sort(), ["delete web1-accept", "delete web2-accept", "delete web2-rollout"]);
    assert.deepEqual(await hostFile(fleet, web2, ENV_FILE), env2, "the env file stays with live secrets");
    assert.equal((await fleet.http(web2, "/health/")).status, 200, "web2 keeps running");
    assert.deepEqual(await pids(web1), pids1, "web1 untouched");

    const cleanup = [
      "sudo systemctl disable --now pms-backend celery-pms",
      "sudo shred -u /etc/pms-backend/.env.production",
      "sudo rmdir /etc/pms-backend                                                           # the env file's directory (the rollout made it)",
      "sudo find /var/lib/pms-secrets/backups -type f -exec shred -u {} +                    # root-only backup generations",
      "sudo rm -rf /var/lib/pms-secrets                                                      # lock, run dirs, backups",
      "sudo rm /etc/systemd/system/{pms-backend,celery-pms}.service.d/50-pms-secrets.conf   # the program's drop-ins",
      "sudo systemctl daemon-reload",
    ].join("\n");
    await onHost(web2, cleanup);
    const left = await fleet.exec(
      web2,
      `ls -d ${ENV_FILE} ${path.posix.dirname(ENV_FILE)} /var/lib/pms-secrets /etc/systemd/system/*.service.d/50-pms-secrets.conf 2>/dev/null || true; ` +
        "systemctl is-enabled pms-backend celery-pms || true; systemctl is-active pms-backend celery-pms || true",
    );
    assert.equal(left.stdout, "disabled\ndisabled\ninactive\ninactive\n");
    const again = assertOk(await up());
    assert.deepEqual(ran(again), []);
    await assertDeployed(web1);
  });

  it("no output of the CLI or of the operator's shell holds a secret", () => {
    assert.ok(stack.secrets.length >= 8, `the scan knows the stack's secrets (${stack.secrets.length})`);
    assert.deepEqual(stack.leaks(), []);
    for (const s of stack.secrets) {
      assert.ok(!shellOutput.some((o) => o.includes(s)), `the operator's shell printed ${s.slice(0, 6)}...`);
    }
  });
});

// Needs no host: runs wherever npm does.
describe("README: npm run dev-env, as written", () => {
  it("writes a developer's .env.development (own key, 0600, the key never printed) and keeps an existing one without --force", async () => {
    assert.ok(README.includes("`npm run dev-env -- [--stack dev] [--out .env.development]\n  [--force]`"));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-dev-env-"));
    try {
      const out = path.join(dir, ".env.development");
      const run = (args: string[]): Promise<ShellResult> =>
        new Promise((resolve) => {
          const child = spawn("npm", ["run", "--silent", "dev-env", "--", ...args], { cwd: REPO, stdio: "pipe" });
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
          child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
          child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
        });
      const first = await run(["--stack", "dev", "--out", out]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(fs.statSync(out).mode & 0o777, 0o600);
      const values = parseEnvFile(fs.readFileSync(out, "utf8"));
      assert.ok(values.SECRET_KEY.length >= 50);
      assert.ok(!(first.stdout + first.stderr).includes(values.SECRET_KEY), "the key is never printed");
      assert.equal(values.DEBUG !== undefined, true);
      const again = await run(["--stack", "dev", "--out", out]);
      assert.notEqual(again.code, 0, "an existing file is kept unless --force");
      assert.equal(parseEnvFile(fs.readFileSync(out, "utf8")).SECRET_KEY, values.SECRET_KEY);
      const forced = await run(["--stack", "dev", "--out", out, "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.notEqual(parseEnvFile(fs.readFileSync(out, "utf8")).SECRET_KEY, values.SECRET_KEY);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
