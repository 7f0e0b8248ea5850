import { test } from "node:test";
import assert from "node:assert/strict";
import { AppRules, parseApp } from "../components/config/app";
import { assertProblem, check, keysOf } from "./config-check";

const dev: AppRules = {
  production: false,
  because: 'stack "dev"',
  allowedHosts: ["api.pms.internal", "www.pms.internal"],
};
const app = (value: Record<string, unknown>, rules = dev) =>
  check((p) => parseApp(p, { dir: "/srv/pms-backend", ...value }, rules));
const HEALTH = "http://127.0.0.1:8000/health/";

test("defaults: env file in root's /etc/pms-backend (not the app dir the app user owns), both services, script defaults, no health host without a URL", () => {
  const { result, problems, warnings } = app({ checkCommand: "venv/bin/python manage.py check --deploy" });
  assert.deepEqual(problems, []);
  assert.deepEqual(warnings, []);
  assert.deepEqual(result, {
    dir: "/srv/pms-backend",
    envFile: "/etc/pms-backend/.env.production",
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

const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ["typo", { healthURL: HEALTH }, "app.healthURL", /not a setting of app/],
  ["relative dir", { dir: "srv/pms-backend" }, "app.dir", /not a normalized absolute path/],
  ["dir with ..", { dir: "/srv/../etc" }, "app.dir", /not a normalized absolute path/],
  [
    "relative envFile",
    { envFile: ".env.production" },
    "app.envFile",
    /not a normalized absolute path.*e\.g\. \/etc\/pms-backend\/\.env\.production/,
  ],
  [
    "envFile is the app dir",
    { envFile: "/srv/pms-backend" },
    "app.envFile",
    /is a directory.*e\.g\. \/etc\/pms-backend\/\.env\.production/,
  ],
  ["envFile ends with /", { envFile: "/srv/pms-backend/env/" }, "app.envFile", /is a directory/],
  [
    "bad service name",
    { services: ["pms-backend", "celery pms;rm"] },
    "app.services[1]",
    /not a valid systemd unit name/,
  ],
  ["service twice", { services: ["a", "a.service"] }, "app.services", /listed twice/],
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
  [
    "socketUnit that is a service",
    { socketUnit: "pms-backend.service" },
    "app.socketUnit",
    /not a socket unit name.*e\.g\. pms-backend\.socket/,
  ],
  ["socketUnit with a space", { socketUnit: "pms backend.socket" }, "app.socketUnit", /not a socket unit name/],
  ["socketUnit not a string", { socketUnit: true }, "app.socketUnit", /not a socket unit name/],
];
for (const [title, value, key, what] of cases) {
  test(`app: ${title} -> ${key}`, () => {
    assertProblem(app(value).problems, key, what);
  });
}

test("socketUnit names the socket that activates the first service", () => {
  const { result, problems } = app({ healthUrl: HEALTH, socketUnit: "pms-backend.socket" });
  assert.deepEqual(problems, []);
  assert.equal(result.socketUnit, "pms-backend.socket");
  assert.equal(app({ healthUrl: HEALTH }).result.socketUnit, undefined);
});

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
