import { test } from "node:test";
import assert from "node:assert/strict";
import { HealthRules, parseHealth } from "../components/config/health";
import { assertProblem, check } from "./config-check";

const dev: HealthRules = {
  production: false,
  because: 'stack "dev"',
  allowedHosts: ["api.pms.internal", "www.pms.internal"],
};
const prod: HealthRules = { ...dev, production: true, because: 'production stack "prod"' };
const health = (value: Record<string, unknown>, rules = dev) => check((p) => parseHealth(p, value, rules));
const HEALTH = "http://127.0.0.1:8000/health/";

test("no health URL: nothing to check, no Host header", () => {
  assert.deepEqual(health({}).result, {
    healthUrls: [],
    healthHost: undefined,
    healthCaFile: undefined,
    healthInsecure: false,
  });
});

test("the health check's Host header defaults to the first ALLOWED_HOSTS name", () => {
  assert.equal(health({ healthUrl: HEALTH }).result.healthHost, "api.pms.internal");
  assert.equal(
    health({ healthUrl: HEALTH }, { ...dev, allowedHosts: [".pms.internal"] }).result.healthHost,
    "pms.internal",
  );
  assert.equal(health({ healthUrl: HEALTH }, { ...dev, allowedHosts: ["*"] }).result.healthHost, undefined);
  assert.equal(health({ healthUrl: HEALTH, healthHost: "www.pms.internal" }).result.healthHost, "www.pms.internal");
  assert.equal(
    health({ healthUrl: HEALTH, healthHost: "a.pms.internal:8000" }, { ...dev, allowedHosts: [".pms.internal"] })
      .problems.length,
    0,
  );
});

test("healthUrl (one) and healthUrls (list) both give the URL list", () => {
  assert.deepEqual(health({ healthUrl: HEALTH }).result.healthUrls, [HEALTH]);
  const urls = [HEALTH, "http://127.0.0.1:8000/api/v1/status/"];
  assert.deepEqual(health({ healthUrls: urls }).result.healthUrls, urls);
});

test("https: a CA file passes through; insecure is accepted off production", () => {
  const ca = health({ healthUrls: ["https://127.0.0.1/health/"], healthCaFile: "/etc/ssl/certs/pms-ca.pem" });
  assert.deepEqual(ca.problems, []);
  assert.equal(ca.result.healthCaFile, "/etc/ssl/certs/pms-ca.pem");
  const { problems, result } = health({ healthUrl: "https://127.0.0.1/health/", healthInsecure: true });
  assert.deepEqual(problems, []);
  assert.equal(result.healthInsecure, true);
});

test("https: app.healthInsecure on a production stack is refused, naming the key, with the CA-file fix", () => {
  const { problems } = health({ healthUrl: "https://127.0.0.1/health/", healthInsecure: true }, prod);
  const line = assertProblem(
    problems,
    "app.healthInsecure",
    /is on for production stack "prod": the health check \(and the login probe\) would not verify the server certificate/,
  );
  assert.match(line, /Fix: give the CA .*app\.healthCaFile.*pulumi config rm --path 'app\.healthInsecure'/);
  // false (the default, or set explicitly) stays fine on production.
  assert.deepEqual(health({ healthUrl: "https://127.0.0.1/health/", healthInsecure: false }, prod).problems, []);
});

const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
  [
    "both healthUrl and healthUrls",
    { healthUrl: HEALTH, healthUrls: [HEALTH] },
    "app.healthUrls",
    /together with app\.healthUrl/,
  ],
  [
    "healthHost not in ALLOWED_HOSTS",
    { healthUrl: HEALTH, healthHost: "127.0.0.1" },
    "app.healthHost",
    /not in env\.ALLOWED_HOSTS.*400/,
  ],
  [
    "healthCaFile without https",
    { healthUrl: HEALTH, healthCaFile: "/etc/ssl/ca.pem" },
    "app.healthCaFile",
    /no health URL is https/,
  ],
  [
    "healthCaFile relative",
    { healthUrl: "https://127.0.0.1/", healthCaFile: "ca.pem" },
    "app.healthCaFile",
    /absolute path/,
  ],
  [
    "healthInsecure with a CA file",
    { healthUrl: "https://127.0.0.1/", healthCaFile: "/etc/ssl/ca.pem", healthInsecure: true },
    "app.healthInsecure",
    /together with app\.healthCaFile/,
  ],
  [
    "healthInsecure not a boolean",
    { healthUrl: "https://127.0.0.1/", healthInsecure: "yes" },
    "app.healthInsecure",
    /not true or false/,
  ],
  ["bad health URL", { healthUrl: "localhost:8000/health" }, "app.healthUrl", /not an http\(s\) URL/],
  ["health URL with credentials", { healthUrl: "http://u:p@127.0.0.1/" }, "app.healthUrl", /without credentials/],
  ["bad URL in the list", { healthUrls: [HEALTH, "ftp://x/"] }, "app.healthUrls[1]", /not an http\(s\) URL/],
  ["healthHost without URL", { healthHost: "api.pms.internal" }, "app.healthHost", /without a health URL/],
];
for (const [title, value, key, what] of cases) {
  test(`health: ${title} -> ${key}`, () => {
    assertProblem(health(value).problems, key, what);
  });
}
