/** Stack configs shared by the unit tests. Values are fake; sentinels make leaks findable. */
import type { AppSpec } from "../components/config";
import { TEST_HOST_KEY } from "./harness";

export const SENTINEL_DB_PASSWORD = "sentinel-DB-PASSWORD-7f3a9c2e41";
export const SENTINEL_PAYSTACK = "sk_live_sentinelPAYSTACK9b8e7d6c5";
export const SENTINEL_HUBTEL = "sentinel-HUBTEL-SECRET-0a1b2c3d4e";
/** A deploy key as an operator of the old program set it (`sshPrivateKey`, now refused). */
export const SENTINEL_SSH_KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQsentinelSSHKEYmaterial0123456789",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");

export function baseConfig(stack: "dev" | "prod", overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hosts: [
      { name: "web1", address: "10.0.0.11", hostKey: TEST_HOST_KEY },
      { name: "web2", address: "10.0.0.12", port: 2222, user: "deploy", hostKey: TEST_HOST_KEY },
    ],
    app: {
      dir: "/srv/pms-backend",
      healthUrl: "http://127.0.0.1:8000/health/",
      checkCommand: "/usr/bin/python3 manage.py check --deploy",
    },
    env: {
      DEBUG: "False",
      ALLOWED_HOSTS: stack === "prod" ? "api.pms.internal" : "dev.pms.internal",
      DB_NAME: "poultry_db",
      DB_USER: "pms",
      DB_HOST: "127.0.0.1",
      DB_PORT: 5432,
    },
    secrets: {
      DB_PASSWORD: SENTINEL_DB_PASSWORD,
      HUBTEL_CLIENT_ID: "hubtel-client-id-123",
      HUBTEL_CLIENT_SECRET: SENTINEL_HUBTEL,
      PAYSTACK_SECRET_KEY: SENTINEL_PAYSTACK,
    },
    generated: { SECRET_KEY: {}, JWT_SIGNING_KEY: { length: 64 } },
    rotation: "2026-11-01",
    kmsKeyId: stack === "prod" ? "alias/pms-secrets-prod" : undefined,
    ...overrides,
  };
}

/** Config with undefined entries dropped, as `pulumi config` would hold it. */
export function defined(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
}

/** The smallest app a rollout command can be built for (one service, no health URL), and its host. */
export const MINIMAL_APP: AppSpec = {
  dir: "/srv/x",
  envFile: "/srv/x/.env.production",
  services: ["a"],
  healthUrls: [],
  healthInsecure: false,
  unmanagedKeys: "refuse",
  backupGenerations: 3,
  stableSeconds: 5,
  healthTimeoutSeconds: 30,
};
export const MINIMAL_HOST = { name: "h", address: "a", port: 22, user: "root" };
