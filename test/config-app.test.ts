import { test } from "node:test";
import assert from "node:assert/strict";
import { AppRules, parseApp } from "../components/config/app";
import { assertProblem, check, keysOf } from "./config-check";

const dev: AppRules = {
  production: false,
  because: 'stack "dev"',
  allowedHosts: ["api.pms.internal", "www.pms.internal"],
};
const prod: AppRules = { ...dev, production: true, because: 'production stack "prod"' };
const app = (value: Record<string, unknown>, rules = dev) =>
  check((p) => parseApp(p, { dir: "/srv/pms-backend", ...value }, rules));
const HEALTH = "http://127.0.0.1:8000/health/";

test("defaults: env file in the app dir, both services, script defaults, no health host without a URL", () => {
  const { result, problems, warnings } = app({ checkCommand: "venv/bin/python manage.py check --deploy" });
  assert.deepEqual(problems, []);
  assert.deepEqual(warnings, []);
  assert.deepEqual(result, {
    dir: "/srv/pms-backend",
    envFile: "/srv/pms-backend/.env.production",
    services: ["pms-backend", "celery-pms"],
    healthUrls: [],
    healthHost: undefined,
    healthCaFile: undefined,
    healthInsecure: false,
    checkCommand: "venv/bin/python manage.py check --deploy",
    envFileGroup: undefined,
    unmanagedKeys: "refuse",
    backupGenerations: 3,
    stableSeconds: 5,
    healthTimeoutSeconds: 30,
  });
});

test("the health check's Host header defaults to the first ALLOWED_HOSTS name", () => {
  assert.equal(app({ healthUrl: HEALTH }).result.healthHost, "api.pms.internal");
  assert.equal(
    app({ healthUrl: HEALTH }, { ...dev, allowedHosts: [".pms.internal"] }).result.healthHost,
    "pms.internal",
  );
  assert.equal(app({ healthUrl: HEALTH }, { ...dev, allowedHosts: ["*"] }).result.healthHost, undefined);
  assert.equal(app({ healthUrl: HEALTH, healthHost: "www.pms.internal" }).result.healthHost, "www.pms.internal");
});

test("healthUrl (one) and healthUrls (list) both give the URL list", () => {
  assert.deepEqual(app({ healthUrl: HEALTH }).result.healthUrls, [HEALTH]);
  const urls = [HEALTH, "http://127.0.0.1:8000/api/v1/status/"];
  assert.deepEqual(app({ healthUrls: urls }).result.healthUrls, urls);
});

test("checkFailLevel is appended to a manage.py check command", () => {
  const { result, problems } = app({
    checkCommand: "venv/bin/python manage.py check --deploy",
    checkFailLevel: "warning",
  });
  assert.deepEqual(problems, []);
  assert.equal(result.checkCommand, "venv/bin/python manage.py check --deploy --fail-level WARNING");
});

test("neither a health URL nor a check command gives a warning", () => {
  const { problems, warnings } = app({});
  assert.deepEqual(problems, []);
  assert.match(warnings.join("\n"), /^pms-secrets:app has neither healthUrl\(s\) nor checkCommand/);
});

test("healthInsecure on production is a warning", () => {
  const { problems, warnings } = app({ healthUrl: "https://127.0.0.1/health/", healthInsecure: true }, prod);
  assert.deepEqual(problems, []);
  assert.match(warnings.join("\n"), /healthInsecure is on for production stack "prod"/);
});

const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ["relative dir", { dir: "srv/pms-backend" }, "app.dir", /not a normalized absolute path/],
  ["dir with ..", { dir: "/srv/../etc" }, "app.dir", /not a normalized absolute path/],
  [
    "relative envFile",
    { envFile: ".env.production" },
    "app.envFile",
    /not a normalized absolute path.*e\.g\. \/srv\/pms-backend\/\.env\.production/,
  ],
  [
    "envFile is the app dir",
    { envFile: "/srv/pms-backend" },
    "app.envFile",
    /is a directory.*e\.g\. \/srv\/pms-backend\/\.env\.production/,
  ],
  ["envFile ends with /", { envFile: "/srv/pms-backend/env/" }, "app.envFile", /is a directory/],
  [
    "bad service name",
    { services: ["pms-backend", "celery pms;rm"] },
    "app.services[1]",
    /not a valid systemd unit name/,
  ],
  ["service twice", { services: ["a", "a.service"] }, "app.services", /listed twice/],
  ["bad health URL", { healthUrl: "localhost:8000/health" }, "app.healthUrl", /not an http\(s\) URL/],
  ["health URL with credentials", { healthUrl: "http://u:p@127.0.0.1/" }, "app.healthUrl", /without credentials/],
  ["bad URL in the list", { healthUrls: [HEALTH, "ftp://x/"] }, "app.healthUrls[1]", /not an http\(s\) URL/],
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
  ["healthHost without URL", { healthHost: "api.pms.internal" }, "app.healthHost", /without a health URL/],
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
  [
    "checkFailLevel unknown",
    { checkCommand: "python manage.py check", checkFailLevel: "LOUD" },
    "app.checkFailLevel",
    /not a Django message level/,
  ],
  [
    "checkFailLevel on another command",
    { checkCommand: "/usr/local/bin/smoke", checkFailLevel: "WARNING" },
    "app.checkFailLevel",
    /manage\.py check/,
  ],
  [
    "checkFailLevel twice",
    { checkCommand: "python manage.py check --fail-level ERROR", checkFailLevel: "WARNING" },
    "app.checkFailLevel",
    /in one place/,
  ],
  ["checkFailLevel without command", { checkFailLevel: "WARNING" }, "app.checkFailLevel", /without app\.checkCommand/],
  ["multi-line check command", { checkCommand: "a\nb" }, "app.checkCommand", /one non-empty line/],
  ["unmanagedKeys unknown", { unmanagedKeys: "merge" }, "app.unmanagedKeys", /not refuse, keep or drop/],
  ["backupGenerations 0", { backupGenerations: 0 }, "app.backupGenerations", /from 1 to 20/],
  ["backupGenerations 21", { backupGenerations: 21 }, "app.backupGenerations", /from 1 to 20/],
  ["stableSeconds 0", { stableSeconds: 0 }, "app.stableSeconds", /from 1 to 300/],
  ["bad group", { envFileGroup: "Www Data" }, "app.envFileGroup", /not a valid group name/],
  ["typo", { healthURL: HEALTH }, "app.healthURL", /not a setting of app/],
];
for (const [title, value, key, what] of cases) {
  test(`app: ${title} -> ${key}`, () => {
    assertProblem(app(value).problems, key, what);
  });
}

test("app missing: one problem for app, defaults for the rest", () => {
  const { problems } = check((p) => parseApp(p, undefined, dev));
  assert.deepEqual(keysOf(problems), ["app"]);
});

test("the new script settings pass through when set", () => {
  const { result, problems } = app({
    healthUrls: ["https://127.0.0.1/health/"],
    healthCaFile: "/etc/ssl/certs/pms-ca.pem",
    unmanagedKeys: "keep",
    backupGenerations: 7,
    checkCommand: "x",
  });
  assert.deepEqual(problems, []);
  assert.equal(result.healthCaFile, "/etc/ssl/certs/pms-ca.pem");
  assert.equal(result.unmanagedKeys, "keep");
  assert.equal(result.backupGenerations, 7);
});
