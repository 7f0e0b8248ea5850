/** `npm run dev-env`: a developer's .env.development (own key, dev plain settings only, 0600). */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { alphabetCharacters } from "../components/alphabet";
import { devEnv, DevEnvError, generateSecretKey, parseArgs, writeDevEnv } from "../components/dev-env";
import { parseEnvFile } from "../components/env-file";
import { djangoSecretKeyProblem } from "../components/secret-rules";

const root = path.join(__dirname, "..");
const devYaml = fs.readFileSync(path.join(root, "Pulumi.dev.yaml"), "utf8");

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "dev-env-"));
}

test("writes the shipped dev stack's plain settings and a Django-valid key, mode 0600, key never printed", () => {
  const dir = tmpDir();
  const out = path.join(dir, ".env.development");
  const line = writeDevEnv({ stack: "dev", out, force: false, projectDir: root });
  assert.equal(fs.statSync(out).mode & 0o777, 0o600);
  const values = parseEnvFile(fs.readFileSync(out, "utf8"));
  assert.equal(values.DB_NAME, "poultry_db");
  assert.equal(values.DEBUG, "False");
  assert.equal(djangoSecretKeyProblem(values.SECRET_KEY), undefined);
  assert.equal(values.SECRET_KEY.length, 64);
  assert.ok(!line.includes(values.SECRET_KEY));
  assert.deepEqual(fs.readdirSync(dir), [".env.development"], "no temporary file is left behind");
});

test("refuses to overwrite without --force; with --force replaces it with a new key", () => {
  const dir = tmpDir();
  const out = path.join(dir, ".env.development");
  fs.writeFileSync(out, "MINE='keep'\n", { mode: 0o644 });
  assert.throws(() => writeDevEnv({ stack: "dev", out, force: false, projectDir: root }), /already exists.*--force/);
  assert.equal(fs.readFileSync(out, "utf8"), "MINE='keep'\n");
  writeDevEnv({ stack: "dev", out, force: true, projectDir: root });
  assert.equal(fs.statSync(out).mode & 0o777, 0o600);
  assert.ok(parseEnvFile(fs.readFileSync(out, "utf8")).SECRET_KEY);
  assert.deepEqual(fs.readdirSync(dir), [".env.development"]);
});

test("the key differs per run and uses only the alphabet's characters", () => {
  const a = devEnv("dev", devYaml).values.SECRET_KEY;
  const b = devEnv("dev", devYaml).values.SECRET_KEY;
  assert.notEqual(a, b);
  const k = generateSecretKey(50, "alphanumeric");
  assert.equal(k.length, 50);
  assert.ok([...k].every((c) => alphabetCharacters("alphanumeric").includes(c)));
  assert.equal(djangoSecretKeyProblem(k), undefined);
});

test("refuses a production stack by name and by production: true, before reading settings", () => {
  const prodYaml = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
  assert.throws(
    () => devEnv("prod", prodYaml),
    (e: unknown) => e instanceof DevEnvError && /production stack/.test(e.message),
  );
  assert.throws(() => devEnv("eu-live", devYaml), /production stack/);
  const flagged = devYaml.replace("config:\n", "config:\n  pms-secrets:production: true\n");
  assert.throws(() => devEnv("staging", flagged), /production stack/);
  assert.throws(
    () => writeDevEnv({ stack: "prod", out: path.join(tmpDir(), "x"), force: false, projectDir: root }),
    /production/,
  );
});

test("never copies a secret: secure values, credential names or shapes and SECRET_KEY in env are refused, all listed", () => {
  const yamlText = [
    "config:",
    "  pms-secrets:env:",
    "    DEBUG: 'True'",
    "    DB_PASSWORD:",
    "      secure: v1:abc",
    "    REDIS_URL: redis://:hunter2hunter2@127.0.0.1:6379/0",
    "    SECRET_KEY: shared-by-everyone",
    "",
  ].join("\n");
  assert.throws(
    () => devEnv("dev", yamlText),
    (e: unknown) => {
      assert.ok(e instanceof DevEnvError);
      assert.equal(e.problems.length, 3);
      assert.match(e.message, /env\.DB_PASSWORD is not a plain value/);
      assert.match(e.message, /env\.REDIS_URL: the value looks like a URL with a password/);
      assert.match(e.message, /env\.SECRET_KEY is set/);
      assert.ok(!e.message.includes("hunter2") && !e.message.includes("shared-by-everyone"));
      return true;
    },
  );
});

test("the stack's secrets and generated keys other than SECRET_KEY are not written", () => {
  const { values } = devEnv("dev", devYaml);
  assert.deepEqual(Object.keys(values).sort(), [
    "ALLOWED_HOSTS",
    "DB_HOST",
    "DB_NAME",
    "DB_PORT",
    "DB_USER",
    "DEBUG",
    "SECRET_KEY",
  ]);
});

test("arguments: defaults, --stack, --out relative to cwd, --force, unknown refused", () => {
  assert.deepEqual(parseArgs([], "/w"), { stack: "dev", out: "/w/.env.development", force: false, projectDir: "/w" });
  assert.deepEqual(parseArgs(["--stack", "qa", "--out", "x/.env", "--force"], "/w"), {
    stack: "qa",
    out: "/w/x/.env",
    force: true,
    projectDir: "/w",
  });
  assert.throws(() => parseArgs(["--key", "v"], "/w"), /unknown argument/);
});
