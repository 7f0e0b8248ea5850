import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, hostKeyProblem, parseStackConfig, RawConfig } from "../components/config";
import { baseConfig, defined, SENTINEL_DB_PASSWORD } from "./fixtures";
import { runProgram, TEST_HOST_KEY } from "./harness";

function raw(config: Record<string, unknown>): RawConfig {
  return Object.fromEntries(
    Object.entries(defined(config)).map(([k, v]) => [
      `pms-secrets:${k}`,
      typeof v === "string" ? v : JSON.stringify(v),
    ]),
  );
}

function problemsOf(config: Record<string, unknown>, stack: "dev" | "prod"): string[] {
  try {
    parseStackConfig(raw(config), stack);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  return [];
}

/** Asserts exactly one problem mentions `key` and that it says how to fix it. */
function assertProblem(problems: string[], key: string, what: RegExp): void {
  const hits = problems.filter((p) => p.startsWith(`pms-secrets:${key}:`));
  assert.equal(hits.length, 1, `expected one problem for ${key}, got:\n${problems.join("\n")}`);
  assert.match(hits[0], what);
  assert.match(hits[0], /Fix: \S/);
}

test("the base dev and prod configs are valid", () => {
  assert.deepEqual(problemsOf(baseConfig("dev"), "dev"), []);
  assert.deepEqual(problemsOf(baseConfig("prod"), "prod"), []);
});

const cases: Array<[string, "dev" | "prod", Record<string, unknown>, string, RegExp]> = [
  ["missing hosts", "dev", { hosts: undefined }, "hosts", /no hosts/],
  ["empty host list", "dev", { hosts: [] }, "hosts", /no hosts/],
  ["empty address", "dev", { hosts: [{ name: "web1", address: "" }] }, "hosts[0].address", /is empty/],
  [
    "duplicate host names",
    "dev",
    {
      hosts: [
        { name: "web1", address: "a" },
        { name: "web1", address: "b" },
      ],
    },
    "hosts[1].name",
    /duplicate host name "web1"/,
  ],
  [
    "port out of range",
    "dev",
    { hosts: [{ name: "web1", address: "a", port: 70000 }] },
    "hosts[0].port",
    /70000 is not a TCP port/,
  ],
  ["port zero", "dev", { hosts: [{ name: "web1", address: "a", port: 0 }] }, "hosts[0].port", /not a TCP port/],
  [
    "malformed hostKey",
    "dev",
    { hosts: [{ name: "web1", address: "a", hostKey: "ssh-ed25519 not!base64" }] },
    "hosts[0].hostKey",
    /not base64/,
  ],
  [
    "hostKey of the wrong type",
    "dev",
    { hosts: [{ name: "web1", address: "a", hostKey: TEST_HOST_KEY.replace("ssh-ed25519", "ssh-rsa") }] },
    "hosts[0].hostKey",
    /does not encode a ssh-rsa key/,
  ],
  [
    "known_hosts line pasted as hostKey",
    "dev",
    { hosts: [{ name: "web1", address: "a", hostKey: `web1.example.com ${TEST_HOST_KEY}` }] },
    "hosts[0].hostKey",
    /known_hosts line/,
  ],
  [
    "missing hostKey on prod",
    "prod",
    { hosts: [{ name: "web1", address: "a" }] },
    "hosts[0].hostKey",
    /prod requires every host key/,
  ],
  [
    "DEBUG true on prod",
    "prod",
    { env: { ...(baseConfig("prod").env as object), DEBUG: "True" } },
    "env.DEBUG",
    /is on for prod/,
  ],
  [
    "DEBUG boolean true on prod",
    "prod",
    { env: { ...(baseConfig("prod").env as object), DEBUG: true } },
    "env.DEBUG",
    /is on for prod/,
  ],
  [
    "empty ALLOWED_HOSTS on prod",
    "prod",
    { env: { ...(baseConfig("prod").env as object), ALLOWED_HOSTS: " , " } },
    "env.ALLOWED_HOSTS",
    /empty for prod/,
  ],
  ["relative app.dir", "dev", { app: { dir: "srv/pms-backend" } }, "app.dir", /not a normalized absolute path/],
  [
    "relative app.envFile",
    "dev",
    { app: { dir: "/srv/pms", envFile: ".env.production" } },
    "app.envFile",
    /not a normalized absolute path/,
  ],
  ["path with ..", "dev", { app: { dir: "/srv/../etc" } }, "app.dir", /not a normalized absolute path/],
  [
    "invalid service name",
    "dev",
    { app: { dir: "/srv/pms", services: ["pms-backend", "celery pms;rm"] } },
    "app.services[1]",
    /not a valid systemd unit name/,
  ],
  ["invalid env key", "dev", { env: { "DB-HOST": "x" } }, "env.DB-HOST", /not a valid environment variable name/],
  [
    "supplied secret with a quote",
    "dev",
    { secrets: { DB_PASSWORD: "it's-SENTINEL" } },
    "secrets.DB_PASSWORD",
    /single quote/,
  ],
  ["supplied secret with a newline", "dev", { secrets: { DB_PASSWORD: "a\nb" } }, "secrets.DB_PASSWORD", /newline/],
  [
    "supplied secret with ${",
    "dev",
    { secrets: { DB_PASSWORD: "pa${USER}ss" } },
    "secrets.DB_PASSWORD",
    /python-dotenv expands/,
  ],
  ["supplied secret with a backslash", "dev", { secrets: { DB_PASSWORD: "a\\b" } }, "secrets.DB_PASSWORD", /backslash/],
  ["missing DB_PASSWORD", "dev", { secrets: { HUBTEL_CLIENT_ID: "x" } }, "secrets.DB_PASSWORD", /is missing/],
  ["recovery window 6", "dev", { recoveryWindowInDays: "6" }, "recoveryWindowInDays", /from 7 to 30/],
  ["recovery window 31", "prod", { recoveryWindowInDays: "31" }, "recoveryWindowInDays", /from 7 to 30/],
  [
    "SECRET_KEY too short",
    "dev",
    { generated: { SECRET_KEY: { length: 40 } } },
    "generated.SECRET_KEY.length",
    /out of range.*at least 50/,
  ],
  [
    "unknown alphabet",
    "dev",
    { generated: { SECRET_KEY: { alphabet: "emoji" } } },
    "generated.SECRET_KEY.alphabet",
    /not a known alphabet/,
  ],
  ["SECRET_KEY set by hand", "dev", { env: { SECRET_KEY: "x" } }, "env.SECRET_KEY", /generated by the program/],
  [
    "rotating a supplied secret",
    "dev",
    { rotate: { DB_PASSWORD: "2026-11-25" } },
    "rotate.DB_PASSWORD",
    /not a generated secret/,
  ],
  ["secret-looking plain env", "dev", { env: { API_TOKEN: "x" } }, "env.API_TOKEN", /looks like a secret/],
  ["missing ssh key", "dev", { sshPrivateKey: undefined }, "sshPrivateKey", /is missing/],
  ["not a private key", "dev", { sshPrivateKey: "ssh-ed25519 AAAA" }, "sshPrivateKey", /not a PEM/],
  ["typo in a key", "dev", { hostz: [] }, "hostz", /not a setting of this program/],
  [
    "bad health URL",
    "dev",
    { app: { dir: "/srv/pms", healthUrl: "localhost:8000/health" } },
    "app.healthUrl",
    /not an http\(s\) URL/,
  ],
];

for (const [title, stack, override, key, what] of cases) {
  test(`bad config: ${title} -> ${key}`, () => {
    const problems = problemsOf({ ...baseConfig(stack), ...override }, stack);
    assertProblem(problems, key, what);
  });
}

test("every problem is listed in one error, before anything else happens", () => {
  const config = {
    ...baseConfig("prod"),
    hosts: [
      { name: "web1", address: "", port: 99999 },
      { name: "web1", address: "b", hostKey: "garbage" },
    ],
    app: { dir: "relative", services: ["bad name"] },
    env: { DEBUG: "true", ALLOWED_HOSTS: "", "BAD-KEY": "x" },
    secrets: { DB_PASSWORD: `${SENTINEL_DB_PASSWORD}'` },
    recoveryWindowInDays: "3",
  };
  let error: ConfigError | undefined;
  try {
    parseStackConfig(raw(config), "prod");
  } catch (e) {
    error = e as ConfigError;
  }
  assert.ok(error instanceof ConfigError);
  const keys = error.problems.map((p) => p.split(":")[1]);
  for (const k of [
    "hosts[0].address",
    "hosts[0].port",
    "hosts[0].hostKey",
    "hosts[1].name",
    "hosts[1].hostKey",
    "app.dir",
    "app.services[0]",
    "env.DEBUG",
    "env.ALLOWED_HOSTS",
    "env.BAD-KEY",
    "secrets.DB_PASSWORD",
    "recoveryWindowInDays",
  ]) {
    assert.ok(keys.includes(k), `missing problem for ${k} in:\n${error.message}`);
  }
  assert.match(error.message, /^Stack "prod" has \d+ configuration problems; nothing was changed:/);
  assert.ok(!error.message.includes(SENTINEL_DB_PASSWORD), "a secret value leaked into the error");
});

test("a bad config fails the program before any resource is registered", async () => {
  await assert.rejects(
    runProgram({ stack: "prod", config: defined({ ...baseConfig("prod"), hosts: [] }) }),
    (e: unknown) => e instanceof ConfigError && /pms-secrets:hosts: no hosts/.test(e.message),
  );
});

test("secret keys stored in plaintext in the stack file are refused", () => {
  assert.throws(
    () => parseStackConfig(raw(baseConfig("dev")), "dev", new Set(["pms-secrets:sshPrivateKey"])),
    (e: unknown) =>
      e instanceof ConfigError && e.problems.some((p) => p.startsWith("pms-secrets:secrets: is stored in plaintext")),
  );
});

test("missing recommended secrets are warnings, one per key, not errors", () => {
  const parsed = parseStackConfig(raw({ ...baseConfig("dev"), secrets: { DB_PASSWORD: "x-y-z" } }), "dev");
  const w = parsed.warnings.filter((x) => /HUBTEL_CLIENT_ID|HUBTEL_CLIENT_SECRET|PAYSTACK_SECRET_KEY/.test(x));
  assert.equal(w.length, 3);
  for (const k of ["HUBTEL_CLIENT_ID", "HUBTEL_CLIENT_SECRET", "PAYSTACK_SECRET_KEY"]) {
    assert.ok(
      w.some((x) => x.startsWith(`pms-secrets:secrets.${k} is not set`)),
      k,
    );
  }
});

test("defaults: env file path, services order, port 22, root, 30-day window on prod and 7 elsewhere", () => {
  const dev = parseStackConfig(raw(baseConfig("dev")), "dev").settings;
  const prod = parseStackConfig(raw(baseConfig("prod")), "prod").settings;
  assert.equal(dev.app.envFile, "/srv/pms-backend/.env.production");
  assert.deepEqual(dev.app.services, ["pms-backend", "celery-pms"]);
  assert.equal(dev.hosts[0].port, 22);
  assert.equal(dev.hosts[0].user, "root");
  assert.equal(dev.recoveryWindowInDays, 7);
  assert.equal(prod.recoveryWindowInDays, 30);
  assert.equal(dev.secretName, "pms-backend/dev");
  assert.equal(prod.secretName, "pms-backend/prod");
  assert.equal(prod.requireHostKeys, true);
  assert.equal(dev.requireHostKeys, false);
  assert.deepEqual(
    dev.generated.find((g) => g.key === "SECRET_KEY"),
    {
      key: "SECRET_KEY",
      length: 64,
      alphabet: "safe",
      keepers: { rotation: "2026-11-01", rotate: "" },
    },
  );
});

test("requireHostKeys makes any stack demand pinned host keys", () => {
  const problems = problemsOf(
    { ...baseConfig("dev"), requireHostKeys: "true", hosts: [{ name: "web1", address: "a" }] },
    "dev",
  );
  assertProblem(problems, "hosts[0].hostKey", /requireHostKeys/);
});

test("an unpinned host on dev is a warning naming the host", () => {
  const parsed = parseStackConfig(raw({ ...baseConfig("dev"), hosts: [{ name: "web1", address: "a" }] }), "dev");
  assert.ok(parsed.warnings.some((w) => w.includes("hosts[0].hostKey") && w.includes("web1")));
});

test("hostKeyProblem accepts real key types and rejects truncated keys", () => {
  assert.equal(hostKeyProblem(TEST_HOST_KEY), undefined);
  assert.equal(hostKeyProblem(`${TEST_HOST_KEY} root@web1`), undefined);
  assert.match(hostKeyProblem(TEST_HOST_KEY.slice(0, 30)) ?? "", /does not encode/);
  assert.match(hostKeyProblem("AAAAC3Nza") ?? "", /must start with a key type/);
});

test("Sensitive values never print", async () => {
  const parsed = parseStackConfig(raw(baseConfig("dev")), "dev");
  const { inspect } = await import("node:util");
  for (const s of [
    String(parsed.suppliedSecrets.DB_PASSWORD),
    JSON.stringify(parsed),
    inspect(parsed, { depth: 10 }),
  ]) {
    assert.ok(!s.includes(SENTINEL_DB_PASSWORD), "Sensitive leaked through string conversion");
  }
  assert.equal(parsed.suppliedSecrets.DB_PASSWORD.reveal(), SENTINEL_DB_PASSWORD);
});
