/**
 * HostRollout: delivers one env file to one host and restarts its services,
 * through a single SSH session per rollout.
 *
 * The host side is the Python agent in agent/ (agent/pms_agent), run by the bash bootstrap
 * agent/bootstrap.sh. Both travel in `stdin` together with the env file, so the `create` text is a
 * short, reviewable argument list and the secret never appears in a command line, `environment`
 * or `triggers`. There is deliberately no `delete`: replacing or removing this resource must never
 * take a secret away from a running service.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { AppSpec, HostSpec } from "./config";
import { agentArgv, AgentValues, isSent, parseAgentArgv, unlessDefault } from "./agent-options";
import { fingerprint } from "./env-file";
import { ROLLOUT_TIMEOUT } from "./rollout-time";

const AGENT_DIR = path.join(__dirname, "..", "agent");

/** The agent's files as the bootstrap unpacks them: the entry, the options table, the package. */
export function agentFiles(dir: string = AGENT_DIR): string[] {
  const pkg = fs
    .readdirSync(path.join(dir, "pms_agent"))
    .filter((f) => f.endsWith(".py"))
    .sort()
    .map((f) => `pms_agent/${f}`);
  return ["main.py", "options.json", ...pkg];
}

/**
 * What a host receives before the env file: the bootstrap, then each agent file as
 * `# pms-agent-file NAME BYTES` and its bytes, then `# pms-agent-end`.
 */
export function agentBundle(dir: string = AGENT_DIR): string {
  const parts = [fs.readFileSync(path.join(dir, "bootstrap.sh"), "utf8")];
  for (const name of agentFiles(dir)) {
    const text = fs.readFileSync(path.join(dir, name), "utf8");
    parts.push(`# pms-agent-file ${name} ${Buffer.byteLength(text, "utf8")}\n`, text);
  }
  parts.push("# pms-agent-end\n");
  return parts.join("");
}

/** The agent as a host receives it (bootstrap and files), loaded as text: the exact bytes sent. */
export const ROLLOUT_SCRIPT = agentBundle();
/** What each rollout's `script:` trigger carries: a change to the agent replaces every rollout once. */
export const ROLLOUT_SCRIPT_FINGERPRINT = fingerprint(ROLLOUT_SCRIPT);

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line run through the login user's shell: the agent's argv, built from the options
 * table (agent/options.json, agent-options.ts) in its order. Only non-secret parameters appear
 * here; a change to any of them is an in-place update that re-runs the rollout (which restarts
 * nothing if the host already has it all). `modeArgs`: the rotation mode's flags
 * (`--secret-key-accept`, secretKeyRolloutArgs, dbPasswordRolloutArgs), read against the table.
 */
export function rolloutCommand(
  host: HostSpec,
  app: AppSpec,
  secretKeys: readonly string[] = [],
  modeArgs: readonly string[] = [],
  stack: { production?: boolean } = {},
): string {
  const probe = app.loginProbe;
  const values: AgentValues = {
    "--host": host.name,
    "--env-file": app.envFile,
    "--app-dir": app.dir,
    "--service": app.services,
    // Production: host rules that only warn elsewhere refuse (an env directory others can write).
    "--production": stack.production === true,
    "--group": app.envFileGroup || undefined,
    "--check": app.checkCommand || undefined,
    "--health-url": app.healthUrls,
    "--health-host": app.healthHost || undefined,
    "--health-ca": app.healthCaFile || undefined,
    "--health-insecure": app.healthInsecure === true,
    "--socket": app.socketUnit || undefined,
    "--login-url": probe?.url,
    "--login-user": probe?.username,
    "--login-password-file": probe?.passwordFile,
    "--login-check-url": probe?.checkUrl,
    // Passed only when not the agent's default, so an unchanged stack keeps its command text.
    "--unmanaged-keys": unlessDefault("--unmanaged-keys", app.unmanagedKeys),
    "--backups": unlessDefault("--backups", app.backupGenerations),
    // Always shown: what a reviewer checks against the time bounds.
    "--stable-seconds": app.stableSeconds,
    "--health-timeout": app.healthTimeoutSeconds,
    // Names (never values) of the secret keys: the script redacts their values from anything it relays.
    "--redact": secretKeys,
  };
  // Routine (nothing, or --secret-key-fallbacks N) vs --emergency: what a reviewer sees first.
  const mode = parseAgentArgv(modeArgs);
  const clash = Object.keys(mode).filter((flag) => isSent(values[flag]));
  if (clash.length > 0) throw new Error(`rollout mode arguments may not set ${clash.join(", ")}`);
  const args = agentArgv({ ...values, ...mode });
  // sudo -n fails at once instead of hanging on a password prompt (pulumi-command has no become).
  const runner = host.user === "root" ? "/bin/bash -s --" : "sudo -n /bin/bash -s --";
  return `${runner} ${args.map(shellQuote).join(" ")}`;
}

/**
 * stdin of the rollout: the agent, then the env file, then an end marker with the env file's
 * SHA-256, so the agent can tell a whole transfer from one cut short at a line end (agent/pms_agent
 * envfile.check_received verifies and strips it). Safe to send: a hash of a document holding a 50+
 * character random value. Without an env file (the agent alone) there is nothing to mark.
 */
export function rolloutStdin(envFile: string): string {
  if (envFile === "") return ROLLOUT_SCRIPT;
  return `${ROLLOUT_SCRIPT}${envFile}# pms-secrets-end sha256=${createHash("sha256").update(envFile, "utf8").digest("hex")}\n`;
}

/**
 * What the preview shows as the reason for a replacement: the env file's
 * fingerprint and the script's fingerprint, never a value.
 */
function rolloutTriggers(envFingerprint: string): string[] {
  return [`env:${envFingerprint}`, `script:${ROLLOUT_SCRIPT_FINGERPRINT}`];
}

/** The env fingerprint a rollout delivered, read back from its triggers ("" when there is none). */
export function deliveredFingerprint(triggers: unknown): string {
  const env = Array.isArray(triggers)
    ? triggers.find((t): t is string => typeof t === "string" && t.startsWith("env:"))
    : undefined;
  return env === undefined ? "" : env.slice("env:".length);
}

export interface HostRolloutArgs {
  /** The host and how to reach it. */
  host: HostSpec;
  /** Where the env file goes and which services read it. */
  app: AppSpec;
  /** Rendered env file content. Must be a secret Output. */
  envFile: pulumi.Input<string>;
  /** Fingerprint of envFile (safe to show; see env-file.ts). */
  envFingerprint: pulumi.Input<string>;
  /** Env keys whose values are secret (names only), redacted from relayed output. */
  secretKeys: readonly string[];
  /** A production stack (the host refuses an env directory others can write). Default false. */
  production?: boolean;
  /** SECRET_KEY rotation mode arguments (secretKeyRolloutArgs); none for the default. */
  secretKeyArgs?: readonly string[];
  /** DB_PASSWORD mode arguments of this host (dbPasswordRolloutArgs); none when it is supplied. */
  dbPasswordArgs?: readonly string[];
  /** Seconds per connection attempt and attempts before giving up. */
  ssh: { timeoutSeconds: number; attempts: number };
}

/** The line the agent logs in an emergency when the old SECRET_KEY stopped being accepted (UTC, ms). */
const OLD_KEY_REJECTED = /secret key: the old key is rejected by \S+ since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)/;

/** When a host's rollout log says it stopped accepting the old SECRET_KEY ("" when it did not). */
export function oldKeyRejectedAt(stdout: unknown): string {
  const m = typeof stdout === "string" ? OLD_KEY_REJECTED.exec(stdout) : null;
  return m ? m[1] : "";
}

/**
 * The SSH connection of a host's rollout commands. No privateKey, password or agentSocketPath: the
 * provider authenticates with the agent named by SSH_AUTH_SOCK in its own environment (inherited
 * from `pulumi up`). The engine stores this whole object in the state, so it holds no credential,
 * and nothing in it changes from run to run (a per-run agent socket path here would re-run every
 * rollout).
 */
/**
 * No privateKey, password or agentSocketPath: the provider authenticates with the agent named by
 * SSH_AUTH_SOCK in its own environment (inherited from `pulumi up`). The engine stores this whole
 * object in the state, so it holds no credential, and nothing in it changes from run to run (a
 * per-run agent socket path here would re-run every rollout).
 */
function connectionOf(args: HostRolloutArgs): command.types.input.remote.ConnectionArgs {
  const { host } = args;
  return {
    host: host.address,
    port: host.port,
    user: host.user,
    hostKey: host.hostKey,
    perDialTimeout: args.ssh.timeoutSeconds,
    dialErrorLimit: args.ssh.attempts,
  };
}

/**
 * One rollout command: `<host>-rollout` (the full rollout) or `<host>-accept` (phase 1 of a
 * two-phase SECRET_KEY rotation, the agent's --secret-key-accept: the new env with the new
 * SECRET_KEY accepted, not yet signing). Same script, stdin, triggers and safety either way.
 */
function rolloutCommandResource(
  parent: pulumi.Resource,
  name: string,
  step: "rollout" | "accept",
  args: HostRolloutArgs,
  opts?: pulumi.ComponentResourceOptions,
): command.remote.Command {
  const { host, app } = args;
  const modeArgs = [
    ...(step === "accept" ? ["--secret-key-accept"] : []),
    ...(args.secretKeyArgs ?? []),
    ...(args.dbPasswordArgs ?? []),
  ];
  return new command.remote.Command(
    `${name}-${step}`,
    {
      connection: connectionOf(args),
      create: rolloutCommand(host, app, args.secretKeys, modeArgs, { production: args.production }),
      stdin: pulumi.secret(pulumi.output(args.envFile).apply(rolloutStdin)),
      triggers: pulumi.output(args.envFingerprint).apply(rolloutTriggers),
      addPreviousOutputInEnv: false,
      // The script prints progress and redacted failures only; still, its output is kept secret in state.
      logging: "stdoutAndStderr",
    },
    {
      parent,
      // A rollout starts only after what it waits for (the stored secret version, the previous host) is done.
      dependsOn: opts?.dependsOn,
      additionalSecretOutputs: ["stdout", "stderr"],
      // config/index.ts refuses a config whose worst case (rollout-time.ts) does not fit this.
      customTimeouts: { create: ROLLOUT_TIMEOUT, update: ROLLOUT_TIMEOUT },
    },
  );
}

export class HostRollout extends pulumi.ComponentResource {
  /** The remote command that performs the rollout. */
  readonly command: command.remote.Command;
  /** Fingerprint of the env file this host receives. */
  readonly envFingerprint: pulumi.Output<string>;
  /** Emergency only: when this host stopped accepting the old SECRET_KEY (from its log; "" otherwise). */
  readonly oldKeyRejectedAt: pulumi.Output<string>;

  constructor(name: string, args: HostRolloutArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pms:secrets:HostRollout", name, {}, opts);
    this.command = rolloutCommandResource(this, name, "rollout", args, opts);
    // From the command's own result, not from the program: it resolves only when this host's rollout
    // succeeded. After a failed rollout the engine keeps the command's old state, so the stack output
    // keeps the fingerprint the host last received and proved healthy.
    this.envFingerprint = this.command.triggers.apply(deliveredFingerprint);
    // A time, never a value: the log line is written by the script and holds no secret.
    this.oldKeyRejectedAt = pulumi.unsecret(this.command.stdout.apply(oldKeyRejectedAt));
    this.registerOutputs({ envFingerprint: this.envFingerprint });
  }
}

/**
 * Phase 1 of a two-phase SECRET_KEY rotation on one host (`<host>-accept`): the host gets the new
 * env but keeps signing with its current SECRET_KEY, the new one added to SECRET_KEY_FALLBACKS.
 * The program makes every host's `<host>-rollout` (phase 2) depend on every host's `-accept`.
 */
export class SecretKeyAccept extends pulumi.ComponentResource {
  readonly command: command.remote.Command;

  constructor(name: string, args: HostRolloutArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pms:secrets:SecretKeyAccept", name, {}, opts);
    this.command = rolloutCommandResource(this, name, "accept", args, opts);
    this.registerOutputs({});
  }
}
