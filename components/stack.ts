/**
 * The whole program as one function, so that index.ts stays wiring and tests can run it under
 * mocks with any config. Data flows one way:
 * config -> generated secrets -> secret store -> per-host rollout -> outputs.
 * `deployPmsSecrets` only wires; what it computes is in the plain functions below it.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ParsedConfig, PROJECT, parseStackConfig, RawConfig, StackSettings } from "./config";
import { ENV_FINGERPRINT_KEY, envFingerprint as keyedEnvFingerprint, renderEnvFile } from "./env-file";
import { GeneratedSecrets } from "./generated-secrets";
import { HostRollout, SecretKeyAccept } from "./host-rollout";
import { planRollout } from "./rollout-plan";
import { SecretStore } from "./secret-store";
import { describeSecretKeyRotation, secretKeyRolloutArgs, secretKeyRotationWarnings } from "./secret-key-rotation";
import { dbPasswordRolloutArgs } from "./db-password-rotation";

/** Reads this project's config from the Pulumi runtime and validates it. Throws ConfigError. */
export function loadStackConfig(): ParsedConfig {
  const all = pulumi.runtime.allConfig();
  const raw: RawConfig = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(`${PROJECT}:`)));
  // isConfigSecret is marked internal in the SDK typings; it is what tells a value
  // that was set with --secret from one pasted in plaintext into the stack file.
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
  const secretKeys = runtime.isConfigSecret
    ? new Set(Object.keys(raw).filter((k) => runtime.isConfigSecret?.(k)))
    : undefined;
  return parseStackConfig(raw, pulumi.getStack(), secretKeys);
}

export interface PmsSecretsOutputs {
  secretArn: pulumi.Output<string>;
  secretVersionId: pulumi.Output<string>;
  hosts: Record<string, { address: string; envFingerprint: pulumi.Output<string> }>;
  keepers: { rotation: string; rotate: Record<string, string> };
  envKeys: { plain: string[]; supplied: string[]; generated: string[] };
  /** Routine (graceful, N fallbacks) or emergency: plain text, no key. */
  secretKeyRotation: string;
  /** Emergency only: when each host stopped accepting the old SECRET_KEY, and the window. */
  secretKeyEmergency?: pulumi.Output<EmergencyWindow>;
}

export function deployPmsSecrets(parsed: ParsedConfig = loadStackConfig()): PmsSecretsOutputs {
  const { settings } = parsed;
  for (const w of parsed.warnings) void pulumi.log.warn(w);
  for (const w of secretKeyRotationWarnings(settings.secretKey)) void pulumi.log.warn(w);
  const keys = envKeysOf(settings);

  const generated = new GeneratedSecrets("generated", { secrets: settings.generated });
  const supplied = pulumi.secret(
    Object.fromEntries(Object.entries(parsed.suppliedSecrets).map(([k, v]) => [k, v.reveal()])),
  );
  // One set of values feeds both the store and every host, so they cannot disagree.
  const values = pulumi.all([generated.values, supplied]).apply(([g, s]) => envValues(settings.env, s, g));
  const envFile = pulumi.secret(values.apply((v) => renderEnvFile(v, envFileHeader(settings.project, settings.stack))));
  // Safe to show: keyed with a random value that only the state holds (never a host, the store
  // or a preview), so the published fingerprint cannot test a guess of any value (env-file.ts).
  const fingerprintKey = new random.RandomPassword(ENV_FINGERPRINT_KEY.name, { ...ENV_FINGERPRINT_KEY.args });
  const envFingerprint = pulumi.unsecret(
    pulumi.all([envFile, fingerprintKey.result]).apply(([file, key]) => keyedEnvFingerprint(key, file)),
  );

  const store = new SecretStore("store", {
    secretName: settings.secretName,
    document: pulumi.secret(values.apply(envDocument)),
    kmsKeyId: settings.kmsKeyId,
    recoveryWindowInDays: settings.recoveryWindowInDays,
    description: `Env of pms-backend for stack ${settings.stack}, written by ${settings.project}`,
    tags: secretTags(settings),
  });

  // Hosts roll in batches (rollout.batches; default one at a time), in config order, and only
  // after the new version is stored. Hosts of a batch depend on nothing of each other, so they
  // roll in parallel; each batch waits for the whole batch before it, so a failure stops the
  // run before the next batch and leaves its hosts untouched. A routine rollout to several hosts
  // runs in two phases (rollout.secretKeyPhases, rollout-plan.ts planRollout): every host's
  // `<host>-accept` first, then every host's `<host>-rollout`, each depending on all of phase 1.
  // An emergency runs one phase: the canary, then every other host at once.
  const secretKeys = [...keys.supplied, ...keys.generated].sort();
  const hosts: PmsSecretsOutputs["hosts"] = {};
  const rejectedAt: Record<string, pulumi.Output<string>> = {};
  // A shared database's admin host (generated.DB_PASSWORD.adminHost) rolls first and alone: it
  // changes the password in PostgreSQL, and every later host only proves it and moves to it.
  const adminHost = settings.dbPassword.adminHost;
  const phases = planRollout(settings.hosts, {
    batches: settings.rollout.batches,
    secretKeyPhases: settings.rollout.secretKeyPhases,
    emergency: settings.secretKey.emergency,
    first: (h) => h.name === adminHost,
  });
  let previous: pulumi.Resource[] = [store.version];
  let phaseBefore: pulumi.Resource[] = [];
  for (const phase of phases) {
    const phaseDone: pulumi.Resource[] = [];
    for (const batch of phase.batches) {
      const done: pulumi.Resource[] = [];
      for (const host of batch) {
        const args = {
          host,
          app: settings.app,
          envFile,
          envFingerprint,
          production: settings.production,
          secretKeys,
          secretKeyArgs: secretKeyRolloutArgs(settings.secretKey),
          dbPasswordArgs: dbPasswordRolloutArgs(settings.dbPassword, host.name),
          ssh: settings.ssh,
        };
        const dependsOn = [store.version, ...phaseBefore, ...previous];
        if (phase.step === "accept") {
          done.push(new SecretKeyAccept(host.name, args, { dependsOn }).command);
          continue;
        }
        const rollout: HostRollout = new HostRollout(host.name, args, { dependsOn });
        hosts[host.name] = { address: host.address, envFingerprint: rollout.envFingerprint };
        rejectedAt[host.name] = rollout.oldKeyRejectedAt;
        done.push(rollout.command);
      }
      previous = done;
      phaseDone.push(...done);
    }
    // Every command of the next phase waits for every command of this one (not only its last batch).
    phaseBefore = phaseDone;
    previous = [];
  }

  return {
    secretArn: store.arn,
    secretVersionId: store.versionId,
    hosts,
    keepers: keepersOf(settings),
    envKeys: keys,
    secretKeyRotation: describeSecretKeyRotation(settings.secretKey),
    ...(settings.secretKey.emergency ? { secretKeyEmergency: emergencyWindow(rejectedAt) } : {}),
  };
}

/**
 * An emergency's report (issue 20): per host, when its log says it stopped accepting the old
 * SECRET_KEY, and the window from the first to the last in seconds. Times only, no key. A host
 * whose rollout changed no key has no time ("").
 */
export function emergencyWindow(rejectedAt: Record<string, pulumi.Output<string>>): pulumi.Output<EmergencyWindow> {
  return pulumi.all(rejectedAt).apply((times) => emergencyWindowOf(times));
}

export interface EmergencyWindow {
  /** Host -> ISO time (UTC) its services stopped accepting the old SECRET_KEY, "" when unknown. */
  oldKeyRejectedAt: Record<string, string>;
  /** Seconds from the first host to the last (0 with one host); -1 when a host has no time. */
  windowSeconds: number;
}

export function emergencyWindowOf(times: Readonly<Record<string, string>>): EmergencyWindow {
  const ms = Object.values(times).map((t) => (t === "" ? NaN : Date.parse(t)));
  const known = ms.length > 0 && ms.every((t) => Number.isFinite(t));
  return {
    oldKeyRejectedAt: { ...times },
    windowSeconds: known ? Math.round(Math.max(...ms) - Math.min(...ms)) / 1000 : -1,
  };
}

/** The comment lines at the top of every env file this program writes. */
export function envFileHeader(project: string, stack: string): string[] {
  return [
    `Managed by ${project} (stack ${stack}). Do not edit: the next rollout overwrites this file.`,
    "Rotate with a keeper change in the stack config; see the project README.",
  ];
}

/** Every env value: plain settings, then supplied secrets, then generated ones (config forbids overlaps). */
export function envValues(
  plain: Readonly<Record<string, string>>,
  supplied: Readonly<Record<string, string>>,
  generated: Readonly<Record<string, string>>,
): Record<string, string> {
  return { ...plain, ...supplied, ...generated };
}

/** The JSON document stored in Secrets Manager: keys sorted, so equal values give equal bytes. */
export function envDocument(values: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(values)
        .sort()
        .map((k) => [k, values[k]]),
    ),
  );
}

/**
 * Tags of the Secrets Manager secret. `Production: "true"` tells the policy pack (which sees the
 * stack only by name) that a stack with `production: true` is production too.
 */
export function secretTags(settings: Pick<StackSettings, "project" | "stack" | "production">): Record<string, string> {
  const tags: Record<string, string> = { Project: settings.project, Stack: settings.stack, ManagedBy: "pulumi" };
  if (settings.production) tags.Production = "true";
  return tags;
}

/** The env file's keys by origin, names only, each list sorted. */
export function envKeysOf(settings: StackSettings): PmsSecretsOutputs["envKeys"] {
  return {
    plain: Object.keys(settings.env).sort(),
    supplied: [...settings.suppliedSecretKeys].sort(),
    generated: settings.generated.map((g) => g.key).sort(),
  };
}

/** The keepers in force: the stack-wide one and each generated secret's own. */
export function keepersOf(settings: StackSettings): PmsSecretsOutputs["keepers"] {
  return {
    rotation: settings.rotation,
    rotate: Object.fromEntries(settings.generated.map((g) => [g.key, g.keepers.rotate])),
  };
}
