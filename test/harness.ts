/**
 * Runs the real program (components/stack.ts) under Pulumi's mocks and records
 * every resource registration: type, name, inputs exactly as the engine would
 * receive them (secrets still wrapped), and declared dependencies. Tests then
 * assert on those records, as in pulumi-awsx's unit tests.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { alphabetCharacters } from "../components/alphabet";
import { PROJECT } from "../components/config";

/** Marker the SDK uses for a secret value in serialized properties. */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface RecordedResource {
  type: string;
  name: string;
  urn: string;
  /** Inputs as sent to the engine; secret values are `{[SIG_KEY]: SECRET_SIG, value}`. */
  rawInputs: Record<string, unknown>;
  /** Inputs with secret wrappers removed. */
  inputs: Record<string, unknown>;
  /** Input paths ("stdin", "connection") that arrived as secrets. */
  secretPaths: string[];
  /** Names of the resources this one waits for. */
  dependsOn: string[];
  /** Registration order. */
  order: number;
  /** Resource options as the engine receives them. */
  options: {
    parent: string;
    additionalSecretOutputs: string[];
    retainOnDelete: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
  };
}

export function isSecretWrapper(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

export function unwrap(v: unknown): unknown {
  if (isSecretWrapper(v)) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
  }
  return v;
}

function secretPathsOf(v: unknown, at: string, out: string[]): void {
  if (isSecretWrapper(v)) {
    out.push(at);
    return;
  }
  if (Array.isArray(v)) v.forEach((x, i) => secretPathsOf(x, `${at}[${i}]`, out));
  else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) secretPathsOf(x, at ? `${at}.${k}` : k, out);
  }
}

/**
 * Deterministic stand-in for random.RandomPassword: the same name, length,
 * alphabet and keepers give the same value; any keeper change gives another.
 * (The real provider draws from crypto/rand; what the tests need is the
 * keeper semantics, which `seed` lets a test vary.)
 */
export function mockPassword(name: string, inputs: Record<string, unknown>, seed = ""): string {
  const length = Number(inputs.length);
  const specials = typeof inputs.overrideSpecial === "string" ? inputs.overrideSpecial : "";
  const alphabet = alphabetCharacters(specials === "" ? "alphanumeric" : "safe");
  let out = "";
  let counter = 0;
  while (out.length < length) {
    const block = createHash("sha256")
      .update(`${seed}|${name}|${JSON.stringify(inputs.keepers)}|${length}|${specials}|${counter++}`)
      .digest();
    for (const byte of block) if (out.length < length) out += alphabet[byte % alphabet.length];
  }
  return out;
}

export interface RunOptions {
  stack: string;
  /** Config values by short key (objects are JSON-encoded as `pulumi config set --path` does). */
  config: Record<string, unknown>;
  /** Short keys that were set with --secret. Default: sshPrivateKey (a leftover, refused) and secrets. */
  secretKeys?: string[];
  /** Varies every generated value (models a fresh draw by the provider). */
  randomSeed?: string;
  preview?: boolean;
  /**
   * Outputs for a resource the engine would compute (RandomPassword.result, ARNs,
   * version ids). Returning undefined falls back to the deterministic defaults.
   */
  computedOutputs?: (
    type: string,
    name: string,
    inputs: Record<string, unknown>,
  ) => Record<string, unknown> | undefined;
}

export interface RunResult {
  resources: RecordedResource[];
  outputs: Record<string, unknown>;
  /** The recorded resource with this type and name; throws if missing. */
  find(type: string, name: string): RecordedResource;
  ofType(type: string): RecordedResource[];
  warnings: string[];
}

/** The SDK's marker for a value not known until the engine creates the resource (a preview's `output<T>`). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

async function settle<T>(o: pulumi.Output<T>): Promise<T> {
  // In a preview, apply callbacks never run on an unknown Output: report it as UNKNOWN instead of waiting forever.
  if (!(await (o as unknown as { isKnown: Promise<boolean> }).isKnown)) return UNKNOWN as T;
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Fully resolves a tree of Outputs to plain values, noting which were secret. */
async function resolveTree(v: unknown, secrets: string[], at: string): Promise<unknown> {
  if (pulumi.Output.isInstance(v)) {
    if (await pulumi.isSecret(v)) secrets.push(at);
    return resolveTree(await settle(v), secrets, at);
  }
  if (Array.isArray(v)) return Promise.all(v.map((x, i) => resolveTree(x, secrets, `${at}[${i}]`)));
  if (typeof v === "object" && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = await resolveTree(x, secrets, at ? `${at}.${k}` : k);
    return out;
  }
  return v;
}

export async function runProgram(opts: RunOptions): Promise<RunResult & { secretOutputs: string[] }> {
  const resources: RecordedResource[] = [];
  const pendingDeps = new Map<string, string[]>();
  const pendingOptions = new Map<string, RecordedResource["options"]>();
  const urnToName = new Map<string, string>();
  const warnings: string[] = [];

  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
        const inputs = unwrap(args.inputs) as Record<string, unknown>;
        const state: Record<string, unknown> = { ...inputs };
        const computed = opts.computedOutputs?.(args.type, args.name, inputs);
        if (computed) Object.assign(state, computed);
        else
          switch (args.type) {
            case "random:index/randomPassword:RandomPassword":
              state.result = mockPassword(args.name, inputs, opts.randomSeed);
              break;
            case "aws:secretsmanager/secret:Secret":
              state.arn = `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${String(inputs.name)}-AbCdEf`;
              break;
            case "aws:secretsmanager/secretVersion:SecretVersion":
              state.versionId = `version-${createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 8)}`;
              break;
          }
        const secretPaths: string[] = [];
        secretPathsOf(args.inputs, "", secretPaths);
        const urn = `urn:pulumi:${opts.stack}::${PROJECT}::${args.type}::${args.name}`;
        resources.push({
          type: args.type,
          name: args.name,
          urn,
          rawInputs: args.inputs as Record<string, unknown>,
          inputs,
          secretPaths,
          dependsOn: [],
          order: resources.length,
          options: {
            parent: "",
            additionalSecretOutputs: [],
            retainOnDelete: false,
            deleteBeforeReplace: false,
            ignoreChanges: [],
          },
        });
        return { id: `${args.name}-id`, state };
      },
      call(args: pulumi.runtime.MockCallArgs): Record<string, unknown> {
        throw new Error(`unexpected provider function call ${args.token}: the program must not call any`);
      },
    },
    PROJECT,
    opts.stack,
    opts.preview ?? false,
  );

  // Record the dependencies the SDK sends with each registration.
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource: (req: RegisterRequest, cb: (err: unknown, resp: unknown) => void) => void;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    pendingDeps.set(req.getName(), req.getDependenciesList());
    pendingOptions.set(req.getName(), {
      parent: req.getParent(),
      additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
      retainOnDelete: req.getRetainondelete() ?? false,
      deleteBeforeReplace: req.getDeletebeforereplace(),
      ignoreChanges: req.getIgnorechangesList(),
    });
    original(req, (err, resp) => {
      if (resp && typeof (resp as { getUrn?: () => string }).getUrn === "function") {
        urnToName.set((resp as { getUrn: () => string }).getUrn(), req.getName());
      }
      cb(err, resp);
    });
  };

  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.config)) {
    config[`${PROJECT}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const secretKeys = (opts.secretKeys ?? ["sshPrivateKey", "secrets"]).map((k) => `${PROJECT}:${k}`);
  pulumi.runtime.setAllConfig(config, secretKeys);

  const originalWarn = pulumi.log.warn;
  (pulumi.log as { warn: typeof pulumi.log.warn }).warn = (msg: string) => {
    warnings.push(msg);
    return Promise.resolve();
  };
  try {
    // Imported late so that the mocks and config are in place first.
    const { deployPmsSecrets } = await import("../components/stack");
    const out = deployPmsSecrets();
    const secretOutputs: string[] = [];
    const outputs = (await resolveTree(out, secretOutputs, "")) as Record<string, unknown>;
    await pulumi.runtime.disconnect();
    for (const r of resources) {
      r.dependsOn = (pendingDeps.get(r.name) ?? []).map((u) => urnToName.get(u) ?? u);
      const o = pendingOptions.get(r.name);
      if (o) r.options = { ...o, parent: urnToName.get(o.parent) ?? o.parent };
    }
    const find = (type: string, name: string): RecordedResource => {
      const r = resources.find((x) => x.type === type && x.name === name);
      if (!r)
        throw new Error(`no ${type} named ${name}; have: ${resources.map((x) => `${x.type}/${x.name}`).join(", ")}`);
      return r;
    };
    return {
      resources,
      outputs,
      secretOutputs,
      warnings,
      find,
      ofType: (type) => resources.filter((r) => r.type === type),
    };
  } finally {
    (pulumi.log as { warn: typeof pulumi.log.warn }).warn = originalWarn;
  }
}

interface RegisterRequest {
  getName(): string;
  getDependenciesList(): string[];
  getParent(): string;
  getAdditionalsecretoutputsList(): string[];
  getRetainondelete(): boolean | undefined;
  getDeletebeforereplace(): boolean;
  getIgnorechangesList(): string[];
}

export const TYPES = {
  password: "random:index/randomPassword:RandomPassword",
  secret: "aws:secretsmanager/secret:Secret",
  version: "aws:secretsmanager/secretVersion:SecretVersion",
  command: "command:remote:Command",
} as const;

/** A throwaway ed25519 key pair in the right formats (never used to connect anywhere). */
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAswVXqfxOkOM1h9osfsETZbgKXK7xQ5XoOozfIXPGGG";
