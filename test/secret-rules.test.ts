import { test } from "node:test";
import assert from "node:assert/strict";
import {
  djangoSecretKeyProblem,
  envKeyOfGeneratedResource,
  generatedResourceName,
  minimumLength,
  plainCredentialProblem,
} from "../components/secret-rules";
import { isProductionStackName, production } from "../components/config/production";

const goodKey = "k".repeat(10) + "A1-_.+=,xyz".repeat(5);

test("minimum lengths: SECRET_KEY 50 (Django), every other generated secret 32", () => {
  assert.equal(minimumLength("SECRET_KEY"), 50);
  assert.equal(minimumLength("JWT_SIGNING_KEY"), 32);
});

test("Django's SECRET_KEY rule: length, distinct characters, no django-insecure-", () => {
  assert.match(djangoSecretKeyProblem("a".repeat(49)) ?? "", /49 characters long; Django requires at least 50/);
  assert.match(djangoSecretKeyProblem("abab".repeat(20)) ?? "", /fewer than 5 distinct/);
  assert.match(djangoSecretKeyProblem("django-insecure-" + goodKey) ?? "", /django-insecure-/);
  assert.equal(djangoSecretKeyProblem(goodKey), undefined);
  assert.ok(!(djangoSecretKeyProblem("abab".repeat(20)) ?? "").includes("abab"), "never echoes the value");
});

test("generated resource name <-> env key", () => {
  assert.equal(generatedResourceName("SECRET_KEY"), "generated-SECRET_KEY");
  assert.equal(envKeyOfGeneratedResource(generatedResourceName("JWT_SIGNING_KEY")), "JWT_SIGNING_KEY");
  assert.equal(envKeyOfGeneratedResource("my-password"), undefined);
});

test("credentials are recognised by name parts and by value shape", () => {
  for (const key of [
    "DB_PASSWORD",
    "EMAIL_PASS",
    "SMTP_PWD",
    "SENTRY_DSN",
    "SENDGRID_API_KEY",
    "API_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "CLIENT_SECRET",
    "GCP_CREDENTIALS",
  ]) {
    assert.ok(plainCredentialProblem(key, "v"), key);
  }
  for (const key of [
    "DB_PORT",
    "PASSPORT_URL",
    "KEYCLOAK_REALM",
    "MONKEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "HUBTEL_CLIENT_ID",
  ]) {
    assert.equal(plainCredentialProblem(key, "v"), undefined, key);
  }
  assert.match(plainCredentialProblem("REDIS_URL", "redis://:pw@h:6379") ?? "", /password/);
  assert.match(plainCredentialProblem("URL", "amqp://guest:guest@rabbit//") ?? "", /password/);
  assert.equal(plainCredentialProblem("URL", "https://user@host/path"), undefined);
  assert.equal(plainCredentialProblem("URL", "https://host/path?a=b:c@d"), undefined);
});

test("production: explicit setting or a production name part; false never weakens a production name", () => {
  for (const name of ["prod", "production", "prd", "live", "prod-eu", "eu_prod", "PROD", "pre-prod"]) {
    assert.ok(isProductionStackName(name), name);
  }
  for (const name of ["dev", "staging", "preprod", "product-demo", "test"]) {
    assert.ok(!isProductionStackName(name), name);
  }
  assert.deepEqual(production("staging", true), { production: true, because: "this stack (production: true)" });
  assert.deepEqual(production("prod", false), { production: true, because: 'production stack "prod"' });
  assert.equal(production("dev", false).production, false);
});
