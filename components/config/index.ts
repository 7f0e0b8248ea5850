/**
 * The one typed, validated view of the stack config. Everything the operator can get wrong is
 * checked before any resource exists: a bad config fails `pulumi preview` with every problem
 * listed, each naming its key and how to fix it. One parser per section (./hosts, ./app, ./env,
 * ./generated, ./secrets, ./secret-key, ./db-password, ./store, ./ssh, ./rollout), each returning
 * its typed piece; this file reads the raw config once and composes them. No SSH credential is
 * config: the program logs in through an SSH agent (./ssh.ts). Secret values are carried in
 * `Sensitive` boxes so they cannot end up in a message.
 */
import { parseApp, AppSpec } from "./app";
import { parseEnv } from "./env";
import { parseGenerated, GeneratedSecretSpec } from "./generated";
import { parseHosts, HostSpec } from "./hosts";
import { Problems } from "./problems";
import { production } from "./production";
import { flag, PROJECT, RawConfig, readText, readValue } from "./read";
import { parseSuppliedSecrets } from "./secrets";
import { Sensitive } from "./sensitive";
import { parseSshSettings, refuseSshPrivateKey, SshSettings } from "./ssh";
import { parseStore, StoreSettings } from "./store";
import { parseSecretKeyRotation, SecretKeyRotation } from "./secret-key";
import { DbPasswordRotation, hostComposedEnvKeys, parseDbPasswordRotation } from "./db-password";
import { parseRollout, RolloutSettings } from "./rollout";
import { checkRolloutTime } from "../rollout-time";

export { ConfigError } from "./problems";
export { PROJECT } from "./read";
export type { RawConfig } from "./read";
export type { AppSpec } from "./app";
export type { GeneratedSecretSpec } from "./generated";
export type { HostSpec } from "./hosts";
export type { SecretKeyRotation } from "./secret-key";
export type { DbPasswordRotation } from "./db-password";
export { Sensitive };

/** Every key of this project's namespace the program reads. Anything else is a typo. */
export const KNOWN_KEYS = [
  "production",
  "hosts",
  "app",
  "env",
  "secrets",
  "generated",
  "rotation",
  "rotate",
  "secretName",
  "kmsKeyId",
  "recoveryWindowInDays",
  "requireHostKeys",
  "sshTimeoutSeconds",
  "sshAttempts",
  "secretKeyFallbacks",
  "rollout",
] as const;

/** Keys the program used to read and now refuses with a migration message of their own. */
export const RETIRED_KEYS = ["sshPrivateKey"] as const;

export interface StackSettings extends StoreSettings {
  project: string;
  stack: string;
  /** The production rules applied (stack name or `production: true`, see ./production.ts). */
  production: boolean;
  hosts: HostSpec[];
  app: AppSpec;
  /** Plain (non-secret) settings written to the env file. */
  env: Record<string, string>;
  /** Names (not values) of the secrets the operator supplied. */
  suppliedSecretKeys: string[];
  generated: GeneratedSecretSpec[];
  rotation: string;
  ssh: SshSettings;
  /** How SECRET_KEY rotations treat the previous key (./secret-key.ts; on the hosts: secret-key-rotation.ts). */
  secretKey: SecretKeyRotation;
  /** Whether a generated DB_PASSWORD is changed in PostgreSQL by the rollout (./db-password.ts; db-password-rotation.ts). */
  dbPassword: DbPasswordRotation;
  /** Canary + batch sizes of the fleet rollout (rollout-plan.ts). */
  rollout: RolloutSettings;
}

export interface ParsedConfig {
  settings: StackSettings;
  suppliedSecrets: Record<string, Sensitive>;
  warnings: readonly string[];
}

/** Keys that hold secrets and must have been set with --secret (the program checks, not the CLI: see Pulumi.yaml). */
const SECRET_KEYS = ["secrets"] as const;

function checkKnownAndEncrypted(problems: Problems, raw: RawConfig, secretKeys?: ReadonlySet<string>): void {
  for (const k of Object.keys(raw)) {
    const short = k.slice(PROJECT.length + 1);
    const known = [...KNOWN_KEYS, ...RETIRED_KEYS] as readonly string[];
    if (k.startsWith(`${PROJECT}:`) && !known.includes(short)) {
      problems.add(short, "is not a setting of this program", `remove it, or use one of: ${KNOWN_KEYS.join(", ")}`);
    }
  }
  for (const key of SECRET_KEYS) {
    // An empty value is Pulumi.yaml's default reaching the program as plain text: missing, not leaked.
    const value = readText(raw, key);
    if (secretKeys && value !== undefined && value !== "" && !secretKeys.has(`${PROJECT}:${key}`)) {
      problems.add(
        key,
        "is stored in plaintext in the stack file",
        "remove it, set it again with `pulumi config set --secret --path 'secrets.DB_PASSWORD'` (it prompts), then rotate the leaked value",
      );
    }
  }
}

/**
 * Parses and validates the raw config of `stack`. Throws ConfigError listing every problem;
 * returns warnings for what is allowed but unwise. `secretKeys`: the full keys set with --secret.
 */
export function parseStackConfig(raw: RawConfig, stack: string, secretKeys?: ReadonlySet<string>): ParsedConfig {
  const problems = new Problems();
  checkKnownAndEncrypted(problems, raw, secretKeys);
  const prod = production(stack, flag(problems, "production", readText(raw, "production"), false));
  const requireHostKeys = flag(problems, "requireHostKeys", readText(raw, "requireHostKeys"), false) || prod.production;
  const because = prod.production ? prod.because : "this stack (requireHostKeys)";

  // Each raw section read once; the parsers below get these values.
  const rawEnv = readValue(raw, "env");
  const rawGenerated = readValue(raw, "generated");
  const rawRotation = readText(raw, "rotation");

  const hosts = parseHosts(problems, readValue(raw, "hosts"), { requireHostKeys, because });
  refuseSshPrivateKey(problems, readText(raw, "sshPrivateKey"));
  const ssh = parseSshSettings(problems, readText(raw, "sshTimeoutSeconds"), readText(raw, "sshAttempts"));
  const generated = parseGenerated(problems, {
    generated: rawGenerated,
    rotation: rawRotation,
    rotate: readValue(raw, "rotate"),
  });
  const generatedKeys = new Set(generated.map((g) => g.key));
  const suppliedSecrets = parseSuppliedSecrets(problems, readValue(raw, "secrets"), generatedKeys);
  const suppliedKeys = new Set(Object.keys(suppliedSecrets));
  const secretKey = parseSecretKeyRotation(problems, {
    fallbacks: readValue(raw, "secretKeyFallbacks"),
    generated,
    env: rawEnv,
    suppliedKeys,
  });
  const dbPassword = parseDbPasswordRotation(problems, {
    generated,
    generatedRaw: rawGenerated,
    env: rawEnv,
    hostNames: hosts.map((h) => h.name),
  });
  const { env, allowedHosts } = parseEnv(problems, rawEnv, {
    ...prod,
    generatedKeys,
    suppliedKeys,
    hostComposedKeys: new Set(hostComposedEnvKeys(rawGenerated)),
  });
  const app = parseApp(problems, readValue(raw, "app"), { ...prod, allowedHosts });
  const store = parseStore(
    problems,
    {
      secretName: readText(raw, "secretName"),
      kmsKeyId: readText(raw, "kmsKeyId"),
      recoveryWindowInDays: readText(raw, "recoveryWindowInDays"),
    },
    stack,
    prod.production,
  );

  const rollout = parseRollout(problems, readValue(raw, "rollout"));
  // Every wait of a host's rollout is bounded: the sum must fit the command's resource timeout.
  if (!problems.has("app") && !problems.has("sshTimeoutSeconds") && !problems.has("sshAttempts")) {
    checkRolloutTime(problems, { app, rotateDbPassword: dbPassword.rotate, ssh });
  }

  problems.throwIfAny(stack);
  return {
    settings: {
      project: PROJECT,
      stack,
      production: prod.production,
      hosts,
      app,
      env,
      suppliedSecretKeys: [...suppliedKeys].sort(),
      generated,
      rotation: rawRotation ?? "",
      ...store,
      ssh,
      secretKey,
      dbPassword,
      rollout,
    },
    suppliedSecrets,
    warnings: problems.warnings,
  };
}
