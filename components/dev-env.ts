/**
 * `npm run dev-env -- [--stack dev] [--out .env.development] [--force]`: writes a developer's local
 * `.env.development`. It holds a SECRET_KEY made here, for this developer only (a key shared by
 * every laptop is a key anyone who ever cloned the repo can sign sessions with), and the stack's
 * plain settings. Never a secret of the stack and never anything of a production stack: the
 * file sits in a working copy, not on a server.
 * Not part of the Pulumi program (no Pulumi import); index.ts does not load it.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { AlphabetName, alphabetCharacters, isAlphabetName } from "./alphabet";
import { renderEnvFile } from "./env-file";
import { isProductionStackName } from "./config/production";
import {
  DEFAULT_GENERATED_LENGTH,
  djangoSecretKeyProblem,
  MAX_GENERATED_LENGTH,
  minimumLength,
  plainCredentialProblem,
} from "./secret-rules";

const PROJECT = "pms-secrets";

export class DevEnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`.env.development was not written:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "DevEnvError";
  }
}

/**
 * A fresh key of `length` characters from `alphabet`, uniform (rejection sampling: a byte is used
 * only below the largest multiple of the alphabet size), drawn again until Django accepts it.
 */
export function generateSecretKey(length = DEFAULT_GENERATED_LENGTH, alphabet: AlphabetName = "safe"): string {
  const chars = alphabetCharacters(alphabet);
  const limit = 256 - (256 % chars.length);
  for (;;) {
    let key = "";
    while (key.length < length) {
      for (const b of randomBytes(length * 2)) {
        if (b < limit && key.length < length) key += chars[b % chars.length];
      }
    }
    if (djangoSecretKeyProblem(key) === undefined) return key;
  }
}

export interface DevEnv {
  /** Everything written to the file, SECRET_KEY included. */
  values: Record<string, string>;
  /** The plain settings taken from the stack (names only, for the summary). */
  settings: string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The key's length and alphabet as the stack's `generated.SECRET_KEY` asks, or the program's defaults. */
function keySpec(generated: unknown, problems: string[]): { length: number; alphabet: AlphabetName } {
  const spec = isRecord(generated) && isRecord(generated.SECRET_KEY) ? generated.SECRET_KEY : {};
  const length = spec.length === undefined ? DEFAULT_GENERATED_LENGTH : Number(spec.length);
  if (!Number.isInteger(length) || length < minimumLength("SECRET_KEY") || length > MAX_GENERATED_LENGTH) {
    problems.push(
      `generated.SECRET_KEY.length must be a whole number from ${minimumLength("SECRET_KEY")} to ${MAX_GENERATED_LENGTH}`,
    );
  }
  const alphabet =
    spec.alphabet === undefined
      ? "safe"
      : typeof spec.alphabet === "string"
        ? spec.alphabet
        : JSON.stringify(spec.alphabet);
  if (!isAlphabetName(alphabet)) {
    problems.push(`generated.SECRET_KEY.alphabet ${JSON.stringify(alphabet)} is not a known alphabet`);
    return { length, alphabet: "safe" };
  }
  return { length, alphabet };
}

/**
 * The contents of `.env.development` for stack `stack`, whose stack file text is `stackYaml`.
 * Refuses (listing every problem) a production stack, an env value that is a secret (`secure:`)
 * or looks like a credential, and a SECRET_KEY among the plain settings.
 */
export function devEnv(stack: string, stackYaml: string): DevEnv {
  const doc: unknown = yaml.load(stackYaml);
  const config = isRecord(doc) && isRecord(doc.config) ? doc.config : {};
  const problems: string[] = [];
  const flag = config[`${PROJECT}:production`];
  if (isProductionStackName(stack) || flag === true || String(flag).toLowerCase() === "true") {
    throw new DevEnvError([
      `stack ${JSON.stringify(stack)} is a production stack (see components/config/production.ts): ` +
        "its settings never go to a developer's machine. Use the dev stack: --stack dev",
    ]);
  }
  const env = config[`${PROJECT}:env`] ?? {};
  if (!isRecord(env)) throw new DevEnvError([`${PROJECT}:env in Pulumi.${stack}.yaml must be a map of settings`]);
  const values: Record<string, string> = {};
  for (const [key, raw] of Object.entries(env)) {
    if (key === "SECRET_KEY") {
      problems.push("env.SECRET_KEY is set in the stack file; this command makes the key, remove it from env");
      continue;
    }
    if (isRecord(raw) || Array.isArray(raw)) {
      problems.push(`env.${key} is not a plain value (a secure: value is a secret); move it to secrets`);
      continue;
    }
    const value = typeof raw === "string" ? raw : String(raw);
    const credential = plainCredentialProblem(key, value);
    if (credential) {
      problems.push(`env.${key}: ${credential}; move it to secrets (it is never copied to .env.development)`);
      continue;
    }
    values[key] = value;
  }
  const { length, alphabet } = keySpec(config[`${PROJECT}:generated`], problems);
  if (problems.length > 0) throw new DevEnvError(problems);
  return {
    values: { ...values, SECRET_KEY: generateSecretKey(length, alphabet) },
    settings: Object.keys(values).sort(),
  };
}

/**
 * Writes `content` to `file` with mode 0600: a new temporary file next to it (O_EXCL, so never
 * through a file or link someone else put there), synced, then renamed over `file`. Without
 * `force` an existing `file` is left alone (link(2) fails on it) and the call throws.
 */
export function writePrivateFile(file: string, content: string, force: boolean): void {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
  );
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    try {
      fs.fchmodSync(fd, 0o600); // the umask may only remove bits; this makes 0600 exact.
      fs.writeSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (force) {
      fs.renameSync(tmp, file);
    } else {
      // link(2) refuses an existing target, so a file created meanwhile is not overwritten either.
      try {
        fs.linkSync(tmp, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") {
          throw new DevEnvError([`${file} already exists; pass --force to replace it (its SECRET_KEY changes)`]);
        }
        throw e;
      }
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export interface DevEnvOptions {
  stack: string;
  out: string;
  force: boolean;
  /** Where Pulumi.<stack>.yaml is. */
  projectDir: string;
}

/** Writes the file; returns the one line to print (never the key). */
export function writeDevEnv(options: DevEnvOptions): string {
  const stackFile = path.join(options.projectDir, `Pulumi.${options.stack}.yaml`);
  if (!/^[A-Za-z0-9_.-]+$/.test(options.stack))
    throw new DevEnvError([`--stack ${JSON.stringify(options.stack)} is not a stack name`]);
  let text: string;
  try {
    text = fs.readFileSync(stackFile, "utf8");
  } catch {
    throw new DevEnvError([`${stackFile} cannot be read; pass --stack with a stack that has a stack file`]);
  }
  const { values, settings } = devEnv(options.stack, text);
  const content = renderEnvFile(values, [
    `Written by \`npm run dev-env\` from Pulumi.${options.stack}.yaml for local development only.`,
    "SECRET_KEY is this machine's own; it is not any server's key. Do not commit this file.",
  ]);
  writePrivateFile(options.out, content, options.force);
  return `wrote ${options.out} (mode 0600): a new SECRET_KEY and ${settings.length} settings of stack ${options.stack} (${settings.join(", ")})`;
}

export function parseArgs(argv: readonly string[], cwd: string): DevEnvOptions {
  const options: DevEnvOptions = {
    stack: "dev",
    out: path.join(cwd, ".env.development"),
    force: false,
    projectDir: cwd,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--force") options.force = true;
    else if ((a === "--stack" || a === "--out") && i + 1 < argv.length) {
      const v = argv[++i];
      if (a === "--stack") options.stack = v;
      else options.out = path.resolve(cwd, v);
    } else
      throw new DevEnvError([
        `unknown argument ${JSON.stringify(a)}; use [--stack dev] [--out .env.development] [--force]`,
      ]);
  }
  return options;
}

if (require.main === module) {
  try {
    console.log(writeDevEnv(parseArgs(process.argv.slice(2), process.cwd())));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  }
}
