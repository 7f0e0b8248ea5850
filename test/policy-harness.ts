/** Argument builders and fixtures shared by the policy tests (test/policy-*.test.ts), shaped like @pulumi/policy 1.21 builds them. */
import * as policySdk from "@pulumi/policy";
import type {
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";

// ---------------------------------------------------------------------------------------------
// Argument builders, shaped like @pulumi/policy 1.21 server.js builds them.

/** The engine's "unknown string" sentinel (what an unknown output looks like on the wire). */
export const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export type Proxify = (props: Record<string, unknown>) => Record<string, unknown>;
/** The SDK's own proxy (exported at runtime since 1.21, not in its typings). */
export const unknownCheckingProxy = (policySdk as unknown as { unknownCheckingProxy: Proxify }).unknownCheckingProxy;

export class NotApplicable extends Error {}

export function urnOf(stack: string, type: string, name: string, parentType?: string): string {
  return `urn:pulumi:${stack}::pms-secrets::${parentType ? `${parentType}$` : ""}${type}::${name}`;
}

export interface ArgOptions {
  stack?: string;
  config?: Record<string, unknown>;
  parentType?: string;
}

/** Resource options as the engine sends them for a resource declared without any. */
export function defaultOptions(): ResourceValidationArgs["opts"] {
  return {
    protect: false,
    ignoreChanges: [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
  };
}

export function resourceArgs(
  type: string,
  name: string,
  props: Record<string, unknown>,
  { stack = "prod", config = {}, parentType }: ArgOptions = {},
): ResourceValidationArgs {
  const proxied = unknownCheckingProxy(props);
  return {
    type,
    name,
    urn: urnOf(stack, type, name, parentType),
    props: proxied,
    opts: defaultOptions(),
    stackTags: new Map<string, string>(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicable(reason);
    },
  };
}

export type Outcome = { violations: string[]; notApplicable?: string };

export async function runResource(policy: ResourceValidationPolicy, args: ResourceValidationArgs): Promise<Outcome> {
  const violations: string[] = [];
  const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
  try {
    for (const validate of validations) await validate?.(args, (message) => violations.push(message));
  } catch (e) {
    if (e instanceof NotApplicable) return { violations, notApplicable: e.message };
    throw e;
  }
  return { violations };
}

export function stackResource(
  type: string,
  name: string,
  props: Record<string, unknown>,
  stack = "prod",
): PolicyResource {
  const proxied = unknownCheckingProxy(props);
  return {
    type,
    name,
    urn: urnOf(stack, type, name),
    props: proxied,
    opts: defaultOptions(),
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
  };
}

export async function runStack(
  policy: StackValidationPolicy,
  resources: PolicyResource[],
): Promise<Array<{ message: string; urn?: string }>> {
  const violations: Array<{ message: string; urn?: string }> = [];
  await policy.validateStack(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: (reason?: string): never => {
        throw new NotApplicable(reason);
      },
    },
    (message, urn) => violations.push({ message, urn }),
  );
  return violations;
}

// ---------------------------------------------------------------------------------------------
// Fixtures shaped like the program's resources.

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
export const SECRET_KEY = "Qx7-vR2.mK9+pL4_zN8~wT3=aB6:cD1?eF5@gH0^jS2!kU7*yV9,nM4xQ8rT1bZ3";
export const DB_PASSWORD = "s3cr3t-Db.Passw0rd+Long_Enough~2026abcdXYZ";
export const PRIVATE_KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
  "QyNTUxOQAAACDjKqp5Fc65tEnRulDqKiy7Gm4B+QvaJFotHYdpfRiiZQAAAJgAAAAAAAAA",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");
export const ROLLOUT =
  "sudo -n /bin/bash -c 'set -euo pipefail; install -m 0640 /dev/stdin \"$env_file.new\"' pms-rollout " +
  "--env-file /srv/pms-backend/.env.production --service pms-backend --service celery-pms " +
  "--health-url https://api.example.com/health/";

export function rolloutProps(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    connection: {
      host: "203.0.113.10",
      port: 22,
      user: "deploy",
      hostKey: HOST_KEY,
      perDialTimeout: 15,
      dialErrorLimit: 3,
    },
    create: ROLLOUT,
    stdin: `SECRET_KEY='${SECRET_KEY}'\nDB_PASSWORD='${DB_PASSWORD}'\nDEBUG='False'\nDB_NAME='poultry_db'\n`,
    triggers: ["env:0123456789abcdef", "script:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    addPreviousOutputInEnv: false,
    logging: "stdoutAndStderr",
    ...overrides,
  };
}

export function isoDaysAgo(days: number): string {
  return new Date(Date.now() - days * 24 * 60 * 60 * 1000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------
