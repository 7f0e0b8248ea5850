/**
 * The resource graph the program registers, under Pulumi's mocks: what exists,
 * in which order, what is secret, and where every secret value travels.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import {
  deliveredFingerprint,
  ROLLOUT_SCRIPT,
  rolloutCommand,
  rolloutStdin,
  shellQuote,
} from "../components/host-rollout";
import { parseEnvFile } from "../components/env-file";
import {
  baseConfig,
  defined,
  MINIMAL_APP,
  MINIMAL_HOST,
  SENTINEL_DB_PASSWORD,
  SENTINEL_HUBTEL,
  SENTINEL_PAYSTACK,
  SENTINEL_SSH_KEY,
} from "./fixtures";
import { isSecretWrapper, mockPassword, RecordedResource, runProgram, TYPES } from "./harness";

const run = (
  stack: "dev" | "prod",
  overrides: Record<string, unknown> = {},
  extra: { randomSeed?: string; preview?: boolean } = {},
) => runProgram({ stack, config: defined(baseConfig(stack, overrides)), ...extra });

test("resource graph: generated secrets, one store with one version, per host an accept (phase 1) and a rollout command", async () => {
  const r = await run("dev");
  const summary = r.resources.map((x) => `${x.type} ${x.name} <- ${x.options.parent || "stack"}`);
  assert.deepEqual(summary.sort(), [
    "aws:secretsmanager/secret:Secret store-secret <- store",
    "aws:secretsmanager/secretVersion:SecretVersion store-version <- store",
    "command:remote:Command web1-accept <- web1",
    "command:remote:Command web1-rollout <- web1",
    "command:remote:Command web2-accept <- web2",
    "command:remote:Command web2-rollout <- web2",
    "pms:secrets:GeneratedSecrets generated <- stack",
    "pms:secrets:HostRollout web1 <- stack",
    "pms:secrets:HostRollout web2 <- stack",
    "pms:secrets:SecretKeyAccept web1 <- stack",
    "pms:secrets:SecretKeyAccept web2 <- stack",
    "pms:secrets:SecretStore store <- stack",
    "random:index/randomPassword:RandomPassword env-fingerprint-key <- stack",
    "random:index/randomPassword:RandomPassword generated-JWT_SIGNING_KEY <- generated",
    "random:index/randomPassword:RandomPassword generated-SECRET_KEY <- generated",
  ]);
});

test("ordering: each host waits for the stored secret version; hosts roll one after another in config order", async () => {
  const r = await run("dev");
  const web1 = r.find(TYPES.command, "web1-rollout");
  const web2 = r.find(TYPES.command, "web2-rollout");
  assert.ok(web1.dependsOn.includes("store-version"), `web1 deps: ${web1.dependsOn.join(",")}`);
  assert.ok(web2.dependsOn.includes("store-version"));
  assert.ok(web2.dependsOn.includes("web1-rollout"), `web2 deps: ${web2.dependsOn.join(",")}`);
  assert.ok(!web1.dependsOn.includes("web2-rollout"));
  const version = r.find(TYPES.version, "store-version");
  assert.ok(version.dependsOn.includes("store-secret"));
});

test("no resource is created inside an apply: preview registers the same resources as an update", async () => {
  const up = await run("dev");
  const preview = await run("dev", {}, { preview: true });
  assert.deepEqual(
    preview.resources.map((x) => `${x.type}/${x.name}`).sort(),
    up.resources.map((x) => `${x.type}/${x.name}`).sort(),
  );
});

test("secret-ness: stdin, connection key, secret document and generated results are secret; outputs are not", async () => {
  const r = await run("dev");
  for (const name of ["web1-rollout", "web2-rollout"]) {
    const c = r.find(TYPES.command, name);
    assert.ok(c.secretPaths.includes("stdin"), `${name} stdin must be secret: ${c.secretPaths.join(",")}`);
    assert.ok(
      c.secretPaths.some((p) => p.startsWith("connection")),
      `${name} connection key must be secret`,
    );
    assert.ok(!c.secretPaths.includes("create"), "create must stay reviewable");
    assert.ok(!c.secretPaths.includes("triggers"), "triggers must stay reviewable");
    for (const o of ["stdout", "stderr"])
      assert.ok(c.options.additionalSecretOutputs.includes(o), `${o} must be a secret output`);
  }
  assert.ok(r.find(TYPES.version, "store-version").secretPaths.includes("secretString"));
  for (const p of r.ofType(TYPES.password)) assert.ok(p.options.additionalSecretOutputs.includes("result"));
  assert.deepEqual(r.secretOutputs, [], "stack outputs must be plain (fingerprints, ARNs, keepers only)");
});

test("the secret Outputs the program builds are secret: env file, store document, generated values", async () => {
  const pulumi = await import("@pulumi/pulumi");
  await run("dev"); // sets mocks and config
  const { loadStackConfig } = await import("../components/stack");
  const { GeneratedSecrets } = await import("../components/generated-secrets");
  const parsed = loadStackConfig();
  const g = new GeneratedSecrets("probe", { secrets: parsed.settings.generated });
  assert.equal(await pulumi.isSecret(g.values), true);
  await pulumi.runtime.disconnect();
});

/** Every occurrence of every secret value, outside secret wrappers, anywhere the engine or a person sees. */
function plainLeaks(
  r: { resources: RecordedResource[]; outputs: unknown; warnings: string[] },
  secrets: string[],
): string[] {
  const leaks: string[] = [];
  const visit = (v: unknown, at: string): void => {
    if (isSecretWrapper(v)) return; // secret: encrypted in state, masked in previews
    if (typeof v === "string") {
      for (const s of secrets) if (v.includes(s)) leaks.push(`${at} contains ${s.slice(0, 12)}...`);
    } else if (Array.isArray(v)) v.forEach((x, i) => visit(x, `${at}[${i}]`));
    else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) visit(x, `${at}.${k}`);
  };
  for (const res of r.resources) {
    visit(res.rawInputs, `${res.type}/${res.name}`);
    for (const s of secrets) if (res.name.includes(s) || res.urn.includes(s)) leaks.push(`resource name ${res.name}`);
  }
  visit(r.outputs, "outputs");
  visit(r.warnings, "warnings");
  return leaks;
}

test("sentinel scan: no secret value appears anywhere but in secret inputs (stdin, connection, secretString)", async () => {
  const r = await run("dev");
  const envText = String(r.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length);
  const env = parseEnvFile(envText);
  const secrets = [SENTINEL_DB_PASSWORD, SENTINEL_HUBTEL, SENTINEL_PAYSTACK, env.SECRET_KEY, env.JWT_SIGNING_KEY];
  assert.deepEqual(plainLeaks(r, secrets), []);
  // ...and they do travel, inside the secret stdin and secret document:
  assert.equal(env.DB_PASSWORD, SENTINEL_DB_PASSWORD);
  assert.equal(env.PAYSTACK_SECRET_KEY, SENTINEL_PAYSTACK);
  const doc = JSON.parse(String(r.find(TYPES.version, "store-version").inputs.secretString)) as Record<string, string>;
  assert.deepEqual(doc, env, "the store holds exactly what the hosts receive");
  // The scan itself can fail: a leak planted in a plain input is found.
  const planted = structuredClone(r.resources);
  planted[0].rawInputs = { note: `x${SENTINEL_DB_PASSWORD}x` };
  assert.equal(plainLeaks({ ...r, resources: planted }, secrets).length, 1);
});

test("rollout command: short, reviewable create; no delete, update or environment; stdin carries script and env", async () => {
  const r = await run("dev");
  const web1 = r.find(TYPES.command, "web1-rollout").inputs;
  const web2 = r.find(TYPES.command, "web2-rollout").inputs;
  assert.equal(
    web1.create,
    "/bin/bash -s -- --host web1 --env-file /etc/pms-backend/.env.production --app-dir /srv/pms-backend " +
      "--service pms-backend --service celery-pms --check '/usr/bin/python3 manage.py check --deploy' " +
      "--health-url http://127.0.0.1:8000/health/ --health-host dev.pms.internal --stable-seconds 5 --health-timeout 30 " +
      "--redact DB_PASSWORD --redact HUBTEL_CLIENT_ID --redact HUBTEL_CLIENT_SECRET --redact JWT_SIGNING_KEY " +
      "--redact PAYSTACK_SECRET_KEY --redact SECRET_KEY",
  );
  assert.match(String(web2.create), /^sudo -n \/bin\/bash -s -- --host web2 /, "a non-root login goes through sudo -n");
  for (const c of [web1, web2]) {
    assert.equal(c.delete, undefined, "a delete would undo the replacement's work (create-before-delete)");
    assert.equal(c.update, undefined);
    assert.equal(c.environment, undefined, "environment travels by SSH Setenv, refused by default and visible");
    assert.equal(c.addPreviousOutputInEnv, false);
    assert.equal(c.logging, "stdoutAndStderr");
    assert.ok(String(c.stdin).startsWith(ROLLOUT_SCRIPT));
    assert.ok(String(c.stdin).endsWith("\n"));
  }
  assert.ok(ROLLOUT_SCRIPT.endsWith("# pms-agent-end\n"), "the agent ends with its end line, the env file follows");
});

test("connection: pinned host key, bounded dial timeout and attempts, no credential (the agent logs in)", async () => {
  const r = await run("prod");
  const conn = r.find(TYPES.command, "web2-rollout").inputs.connection as Record<string, unknown>;
  assert.equal(conn.host, "10.0.0.12");
  assert.equal(conn.port, 2222);
  assert.equal(conn.user, "deploy");
  assert.match(String(conn.hostKey), /^ssh-ed25519 AAAA/);
  assert.equal(conn.perDialTimeout, 10);
  assert.equal(conn.dialErrorLimit, 3);
  assert.deepEqual(Object.keys(conn).sort(), ["dialErrorLimit", "host", "hostKey", "perDialTimeout", "port", "user"]);
});

test("triggers carry fingerprints only, and change exactly when the env file changes", async () => {
  const a = await run("dev");
  const b = await run("dev", { env: { ...(baseConfig("dev").env as object), DB_HOST: "10.0.0.5" } });
  const ta = a.find(TYPES.command, "web1-rollout").inputs.triggers as string[];
  const tb = b.find(TYPES.command, "web1-rollout").inputs.triggers as string[];
  assert.match(ta[0], /^env:[0-9a-f]{16}$/);
  assert.match(ta[1], /^script:[0-9a-f]{16}$/);
  assert.notEqual(ta[0], tb[0]);
  assert.equal(ta[1], tb[1]);
  const hosts = a.outputs.hosts as Record<string, { envFingerprint: string }>;
  assert.equal(`env:${hosts.web1.envFingerprint}`, ta[0], "the stack output shows the same fingerprint as the preview");
});

test("the published env fingerprint is keyed: not the env file's plain SHA-256, only computable with the key in state", async () => {
  const r = await run("dev", { secrets: { DB_PASSWORD: "weak-guessable-1" } });
  const trigger = (r.find(TYPES.command, "web1-rollout").inputs.triggers as string[])[0];
  const stdin = String(r.find(TYPES.command, "web1-rollout").inputs.stdin);
  const env = stdin.slice(ROLLOUT_SCRIPT.length).replace(/# pms-secrets-end sha256=[0-9a-f]+\n$/, "");
  const plain = createHash("sha256").update(env, "utf8").digest("hex").slice(0, 16);
  assert.notEqual(
    trigger,
    `env:${plain}`,
    "a plain hash of the env file lets its previous holder test guesses offline",
  );
  // Whoever holds the previous file and guesses the weak DB_PASSWORD right still cannot confirm it.
  const guessed = env.replace(/^DB_PASSWORD='[^']*'$/m, "DB_PASSWORD='weak-guessable-1'");
  assert.equal(guessed, env);
  assert.notEqual(trigger, `env:${createHash("sha256").update(guessed, "utf8").digest("hex").slice(0, 16)}`);
  // The key: a RandomPassword in state only (64 letters and digits, no keepers, result secret).
  const key = r.find(TYPES.password, "env-fingerprint-key");
  assert.equal(key.inputs.length, 64);
  assert.equal(key.inputs.special, false);
  assert.equal(key.inputs.keepers, undefined, "never rotated: a re-run keeps the same fingerprints");
  assert.ok(key.options.additionalSecretOutputs.includes("result"));
  const keyValue = mockPassword("env-fingerprint-key", key.inputs);
  assert.ok(!stdin.includes(keyValue), "the key never reaches a host");
  const document = String(r.find(TYPES.version, "store-version").inputs.secretString);
  assert.ok(!document.includes(keyValue), "nor the secret store");
  assert.equal(trigger, `env:${createHmac("sha256", keyValue).update(env, "utf8").digest("hex").slice(0, 16)}`);
});

test("a production stack's rollout commands carry --production (the host refuses an env directory others can write); dev's do not", async () => {
  const prod = await run("prod");
  const dev = await run("dev");
  for (const c of prod.ofType(TYPES.command)) {
    assert.match(String(c.inputs.create), / --service celery-pms --production /, c.name);
  }
  for (const c of dev.ofType(TYPES.command)) assert.doesNotMatch(String(c.inputs.create), /--production/, c.name);
});

test("a re-run with nothing changed registers identical inputs everywhere (so the engine touches nothing)", async () => {
  const a = await run("prod");
  const b = await run("prod");
  assert.deepEqual(
    b.resources.map((x) => [x.name, x.inputs]),
    a.resources.map((x) => [x.name, x.inputs]),
  );
});

/** Keepers of each generated secret (`generated-<KEY>`; the fingerprint key is no env value). */
function keepersByKey(r: { ofType(t: string): RecordedResource[] }): Record<string, unknown> {
  return Object.fromEntries(
    r
      .ofType(TYPES.password)
      .filter((p) => p.name.startsWith("generated-"))
      .map((p) => [p.name, p.inputs.keepers]),
  );
}

test("rotate.SECRET_KEY changes only SECRET_KEY's keepers", async () => {
  const before = keepersByKey(await run("dev"));
  const after = keepersByKey(await run("dev", { rotate: { SECRET_KEY: "2026-11-25" } }));
  assert.notDeepEqual(after["generated-SECRET_KEY"], before["generated-SECRET_KEY"]);
  assert.deepEqual(after["generated-JWT_SIGNING_KEY"], before["generated-JWT_SIGNING_KEY"]);
  assert.deepEqual(after["generated-SECRET_KEY"], { rotation: "2026-11-01", rotate: "2026-11-25" });
});

test("the global rotation keeper changes every generated secret's keepers, and nothing secret is a keeper", async () => {
  const before = await run("dev");
  const after = await run("dev", { rotation: "2026-12-01" });
  const kb = keepersByKey(before);
  const ka = keepersByKey(after);
  for (const name of Object.keys(kb)) assert.notDeepEqual(ka[name], kb[name], name);
  for (const p of after.ofType(TYPES.password)) assert.ok(!p.secretPaths.some((s) => s.startsWith("keepers")));
  assert.deepEqual((after.outputs.keepers as { rotation: string }).rotation, "2026-12-01");
});

test("a rotation reaches every host and the store: new env fingerprint, new secret version", async () => {
  const before = await run("dev");
  const after = await run("dev", { rotate: { SECRET_KEY: "2026-11-25" } });
  for (const h of ["web1", "web2"]) {
    assert.notEqual(
      (after.outputs.hosts as Record<string, { envFingerprint: string }>)[h].envFingerprint,
      (before.outputs.hosts as Record<string, { envFingerprint: string }>)[h].envFingerprint,
    );
  }
  assert.notEqual(after.outputs.secretVersionId, before.outputs.secretVersionId);
  const envBefore = parseEnvFile(
    String(before.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length),
  );
  const envAfter = parseEnvFile(
    String(after.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length),
  );
  assert.notEqual(envAfter.SECRET_KEY, envBefore.SECRET_KEY);
  assert.equal(envAfter.JWT_SIGNING_KEY, envBefore.JWT_SIGNING_KEY);
  assert.equal(envAfter.DB_PASSWORD, envBefore.DB_PASSWORD);
});

test("generated secrets: Django-safe length and the safe alphabet", async () => {
  const r = await run("dev", {
    generated: { SECRET_KEY: {}, API_SIGNING_KEY: { length: 40, alphabet: "alphanumeric" } },
  });
  const sk = r.find(TYPES.password, "generated-SECRET_KEY").inputs;
  assert.equal(sk.length, 64);
  // No comma in SECRET_KEY: it separates SECRET_KEY_FALLBACKS (secret-key-rotation.ts).
  assert.equal(sk.overrideSpecial, "-_.+=");
  assert.equal(sk.special, true);
  const api = r.find(TYPES.password, "generated-API_SIGNING_KEY").inputs;
  assert.equal(api.length, 40);
  assert.equal(api.special, false);
  const env = parseEnvFile(String(r.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length));
  assert.match(env.API_SIGNING_KEY, /^[A-Za-z0-9]{40}$/);
  assert.match(env.SECRET_KEY, /^[A-Za-z0-9_.+=,-]{64}$/);
});

test("dev and prod differ where they must: recovery window, KMS key, secret name, tags", async () => {
  const dev = await run("dev");
  const prod = await run("prod");
  const ds = dev.find(TYPES.secret, "store-secret").inputs;
  const ps = prod.find(TYPES.secret, "store-secret").inputs;
  assert.equal(ds.recoveryWindowInDays, 7);
  assert.equal(ps.recoveryWindowInDays, 30);
  assert.equal(ds.name, "pms-backend/dev");
  assert.equal(ps.name, "pms-backend/prod");
  assert.equal(ps.kmsKeyId, "alias/pms-secrets-prod");
  assert.equal(ds.kmsKeyId, undefined);
  assert.deepEqual(ps.tags, { Project: "pms-secrets", Stack: "prod", ManagedBy: "pulumi", Production: "true" });
  assert.deepEqual(ds.tags, { Project: "pms-secrets", Stack: "dev", ManagedBy: "pulumi" });
});

test("the secret version is retained on delete so AWSPREVIOUS survives a replacement", async () => {
  const r = await run("dev");
  assert.equal(r.find(TYPES.version, "store-version").options.retainOnDelete, true);
  assert.equal(r.find(TYPES.secret, "store-secret").options.retainOnDelete, false);
});

test("command resources replace create-before-delete (and have no delete to run)", async () => {
  const r = await run("dev");
  for (const c of r.ofType(TYPES.command)) {
    assert.equal(c.options.deleteBeforeReplace, false);
    assert.equal(c.inputs.delete, undefined);
  }
});

test("missing recommended secrets produce one warning each, through the engine log", async () => {
  const r = await run("dev", { secrets: { DB_PASSWORD: "a-b-c-d" } });
  assert.equal(r.warnings.filter((w) => /HUBTEL_CLIENT_ID|HUBTEL_CLIENT_SECRET|PAYSTACK_SECRET_KEY/.test(w)).length, 3);
});

test("shellQuote survives the login shell: arguments reach the script unchanged", () => {
  const words = ["plain", "with space", "it's", "$HOME `id` $(id)", "a\\b", "*?[x]", "", "--flag=v"];
  const line = `printf '%s\\n' ${words.map(shellQuote).join(" ")}`;
  const out = execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" });
  assert.deepEqual(out.split("\n").slice(0, -1), words);
});

const APP = MINIMAL_APP;
const HOST = MINIMAL_HOST;

test("rolloutCommand quotes a check command with quotes and dollars safely", () => {
  const cmd = rolloutCommand(HOST, { ...APP, checkCommand: `sh -c 'echo "$HOME"'` });
  const out = execFileSync("/bin/sh", ["-c", cmd.replace("/bin/bash -s --", "printf '%s\\n'")], { encoding: "utf8" });
  assert.ok(out.includes(`sh -c 'echo "$HOME"'\n`), out);
});

test("rolloutCommand passes the script's newer options only when set or not the script's default", () => {
  assert.equal(
    rolloutCommand(HOST, APP),
    "/bin/bash -s -- --host h --env-file /srv/x/.env.production --app-dir /srv/x --service a --stable-seconds 5 --health-timeout 30",
  );
  const all = rolloutCommand(HOST, {
    ...APP,
    healthUrls: ["https://127.0.0.1/health/", "https://127.0.0.1/api/status/"],
    healthHost: "api.pms.internal",
    healthCaFile: "/etc/ssl/pms-ca.pem",
    healthInsecure: true,
    unmanagedKeys: "keep",
    backupGenerations: 5,
    socketUnit: "pms-backend.socket",
    loginProbe: {
      url: "https://127.0.0.1/accounts/login/",
      username: "rollout-probe",
      passwordFile: "/etc/pms-secrets/login-probe",
      checkUrl: "https://127.0.0.1/me/",
    },
  });
  assert.equal(
    all,
    "/bin/bash -s -- --host h --env-file /srv/x/.env.production --app-dir /srv/x --service a " +
      "--health-url https://127.0.0.1/health/ --health-url https://127.0.0.1/api/status/ --health-host api.pms.internal " +
      "--health-ca /etc/ssl/pms-ca.pem --health-insecure --socket pms-backend.socket " +
      "--login-url https://127.0.0.1/accounts/login/ --login-user rollout-probe " +
      "--login-password-file /etc/pms-secrets/login-probe --login-check-url https://127.0.0.1/me/ --unmanaged-keys keep --backups 5 " +
      "--stable-seconds 5 --health-timeout 30",
  );
});

test("no remote.Command carries a credential in its connection (it would be stored in the state), up or preview", async () => {
  for (const stack of ["dev", "prod"] as const) {
    for (const preview of [false, true]) {
      const r = await run(stack, {}, { preview });
      const commands = r.ofType(TYPES.command);
      assert.ok(commands.length > 0);
      for (const c of commands) {
        const conn = c.inputs.connection as Record<string, unknown>;
        for (const field of ["privateKey", "privateKeyPassword", "password", "agentSocketPath"]) {
          assert.equal(conn[field], undefined, `${stack} ${c.name}: connection.${field}`);
        }
        assert.doesNotMatch(JSON.stringify(c.inputs), /PRIVATE KEY/, `${stack} ${c.name}`);
        assert.deepEqual(
          c.options.ignoreChanges,
          [],
          `${stack} ${c.name}: nothing ignored (an ignored key stays in state)`,
        );
      }
    }
  }
});

test("a leftover sshPrivateKey fails the program before any resource, with the SSH agent migration", async () => {
  for (const preview of [false, true]) {
    await assert.rejects(
      run("dev", { sshPrivateKey: SENTINEL_SSH_KEY }, { preview }),
      (e: unknown) =>
        e instanceof Error &&
        /pms-secrets:sshPrivateKey: is no longer read: .*stored in the state.*Fix: `pulumi config rm sshPrivateKey`, then use an SSH agent: /.test(
          e.message,
        ) &&
        !e.message.includes(SENTINEL_SSH_KEY.split("\n")[1]),
    );
  }
});

test("a host's exported fingerprint is read back from its rollout command (what it was last delivered)", () => {
  assert.equal(deliveredFingerprint(["env:0123456789abcdef", "script:fedcba9876543210"]), "0123456789abcdef");
  assert.equal(deliveredFingerprint(undefined), "");
  assert.equal(deliveredFingerprint(["script:fedcba9876543210"]), "");
});

test("stdin ends with the env file's SHA-256 end marker, which the script verifies and strips", async () => {
  const r = await run("dev");
  const stdin = String(r.find(TYPES.command, "web1-rollout").inputs.stdin);
  const match = /([\s\S]*)# pms-secrets-end sha256=([0-9a-f]{64})\n$/.exec(stdin.slice(ROLLOUT_SCRIPT.length));
  assert.ok(match, "no end marker");
  assert.equal(createHash("sha256").update(match[1], "utf8").digest("hex"), match[2]);
  assert.ok(ROLLOUT_SCRIPT.includes('END_MARKER = "# pms-secrets-end sha256="'), "the agent knows the marker");
  assert.equal(rolloutStdin(""), ROLLOUT_SCRIPT, "the agent alone carries no marker");
});
