/** `generated`, `rotation`, `rotate`: the secrets the program makes, and the keepers that renew them. */
import { AlphabetName, ALPHABETS, isAlphabetName } from "../alphabet";
import { keyProblem } from "../env-file";
import { DEFAULT_GENERATED_LENGTH, MAX_GENERATED_LENGTH, minimumLength } from "../secret-rules";
import type { Problems } from "./problems";
import { isObject, scalar, unknownKeys, wholeNumber } from "./read";

export interface RotationKeepers {
  /** The stack-wide keeper (`pms-secrets:rotation`). */
  rotation: string;
  /** This secret's own keeper (`pms-secrets:rotate.<KEY>`). */
  rotate: string;
}

export interface GeneratedSecretSpec {
  /** Env key the value is written under. */
  key: string;
  length: number;
  alphabet: AlphabetName;
  keepers: RotationKeepers;
}

export interface GeneratedInput {
  generated: unknown;
  rotation?: string;
  rotate: unknown;
}

/** The keys of one `generated` entry; DB_PASSWORD's also takes DB_PASSWORD_SPEC_KEYS (db-password-rotation.ts). */
export const GENERATED_SPEC_KEYS = ["length", "alphabet"] as const;
export const DB_PASSWORD_SPEC_KEYS = ["roles", "adminHost"] as const;

function parseRotate(problems: Problems, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) {
    problems.add(
      "rotate",
      "must be a map from a generated secret's env key to its keeper",
      "e.g. `pulumi config set --path 'rotate.SECRET_KEY' 2026-11-25`",
    );
    return {};
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scalar(v)]));
}

function parseLength(problems: Problems, at: string, key: string, value: unknown): number {
  const unit =
    key === "SECRET_KEY" ? "the length in characters (Django requires at least 50)" : "the length in characters";
  return wholeNumber(problems, `${at}.length`, value, {
    min: minimumLength(key),
    max: MAX_GENERATED_LENGTH,
    default: DEFAULT_GENERATED_LENGTH,
    unit,
  });
}

function parseAlphabet(problems: Problems, at: string, value: unknown): AlphabetName {
  if (value === undefined) return "safe";
  const a = scalar(value);
  if (isAlphabetName(a)) return a;
  problems.add(
    `${at}.alphabet`,
    `${JSON.stringify(a)} is not a known alphabet`,
    `use one of: ${Object.keys(ALPHABETS).join(", ")}`,
  );
  return "safe";
}

/** Parses the generated secrets (SECRET_KEY always among them) with their keepers. */
export function parseGenerated(problems: Problems, input: GeneratedInput): GeneratedSecretSpec[] {
  const rotation = input.rotation ?? "";
  if (/[\r\n]/.test(rotation))
    problems.add("rotation", "must be one line", "use a date and a counter, e.g. 2026-11-25.1");
  const rotate = parseRotate(problems, input.rotate);
  const specs: Record<string, unknown> = { SECRET_KEY: {} };
  if (input.generated !== undefined && !isObject(input.generated)) {
    problems.add(
      "generated",
      "must be a map from env key to {length?, alphabet?}",
      "e.g. `pulumi config set --path 'generated.JWT_SIGNING_KEY.length' 64`",
    );
  } else Object.assign(specs, input.generated);

  const generated = Object.entries(specs).map(([key, raw]): GeneratedSecretSpec => {
    const at = `generated.${key}`;
    const kp = keyProblem(key);
    if (kp) problems.add(at, `the key ${kp}`, "rename it to a valid name, e.g. JWT_SIGNING_KEY");
    if (raw !== null && raw !== undefined && !isObject(raw)) {
      problems.add(at, "must be an object {length?, alphabet?}", "use {} for the defaults");
    }
    const spec = isObject(raw) ? raw : {};
    // DB_PASSWORD also takes `roles` (alternating login roles) and `adminHost` (shared database),
    // parsed in db-password-rotation.ts.
    unknownKeys(
      problems,
      at,
      spec,
      key === "DB_PASSWORD" ? [...GENERATED_SPEC_KEYS, ...DB_PASSWORD_SPEC_KEYS] : GENERATED_SPEC_KEYS,
    );
    return {
      key,
      length: parseLength(problems, at, key, spec.length),
      alphabet: parseAlphabet(problems, at, spec.alphabet),
      keepers: { rotation, rotate: rotate[key] ?? "" },
    };
  });
  for (const k of Object.keys(rotate)) {
    if (!(k in specs)) {
      problems.add(
        `rotate.${k}`,
        `${k} is not a generated secret, so there is nothing to rotate`,
        `use one of: ${Object.keys(specs).join(", ")}; supplied secrets are changed with \`pulumi config set --secret --path 'secrets.${k}'\` (it prompts)`,
      );
    }
  }
  return generated;
}
