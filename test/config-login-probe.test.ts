import { test } from "node:test";
import assert from "node:assert/strict";
import type { HealthSettings } from "../components/config/health";
import { parseLoginProbe } from "../components/config/login-probe";
import { assertProblem, check, keysOf } from "./config-check";

const health = (urls = ["http://127.0.0.1:8000/health/"]): HealthSettings => ({
  healthUrls: urls,
  healthHost: "api.pms.internal",
  healthInsecure: false,
});
const PROBE = {
  url: "http://127.0.0.1:8000/accounts/login/",
  username: "rollout-probe",
  passwordFile: "/etc/pms-secrets/login-probe",
  checkUrl: "http://127.0.0.1:8000/me/",
};
const probe = (value: unknown, h = health()) => check((p) => parseLoginProbe(p, value, h));

test("no app.loginProbe: no probe", () => {
  const { result, problems } = probe(undefined);
  assert.equal(result, undefined);
  assert.deepEqual(problems, []);
});

test("a full probe is taken as written", () => {
  const { result, problems } = probe(PROBE);
  assert.deepEqual(problems, []);
  assert.deepEqual(result, PROBE);
});

const cases: Array<[string, unknown, string, RegExp]> = [
  ["not an object", "yes", "app.loginProbe", /must be an object/],
  ["unknown key", { ...PROBE, password: "x" }, "app.loginProbe.password", /not a setting/],
  ["username missing", { ...PROBE, username: undefined }, "app.loginProbe.username", /is missing/],
  ["username with a space", { ...PROBE, username: "a b" }, "app.loginProbe.username", /not a Django username/],
  [
    "password file missing",
    { ...PROBE, passwordFile: undefined },
    "app.loginProbe.passwordFile",
    /is missing.*root-only/,
  ],
  ["password file relative", { ...PROBE, passwordFile: "login-probe" }, "app.loginProbe.passwordFile", /absolute/],
  ["url not http", { ...PROBE, url: "ftp://127.0.0.1/login/" }, "app.loginProbe.url", /not an http\(s\) URL/],
  [
    "url with credentials",
    { ...PROBE, url: "http://u:p@127.0.0.1/login/" },
    "app.loginProbe.url",
    /without credentials/,
  ],
  ["checkUrl missing", { ...PROBE, checkUrl: undefined }, "app.loginProbe.checkUrl", /is missing/],
  [
    "https probe with http health URLs",
    { ...PROBE, checkUrl: "https://127.0.0.1/me/" },
    "app.loginProbe.checkUrl",
    /scheme of the health URLs/,
  ],
];
for (const [title, value, key, what] of cases) {
  test(`app.loginProbe: ${title} -> ${key}`, () => {
    assertProblem(probe(value).problems, key, what);
  });
}

test("a probe without a health URL is refused (it runs after them, with their Host and TLS settings)", () => {
  const { problems } = probe(PROBE, health([]));
  assertProblem(problems, "app.loginProbe", /without a health URL/);
});

test("every problem of a bad probe is listed at once", () => {
  const { problems } = probe({ url: "x", username: "", checkUrl: "y" });
  assert.deepEqual(keysOf(problems).sort(), [
    "app.loginProbe.checkUrl",
    "app.loginProbe.passwordFile",
    "app.loginProbe.url",
    "app.loginProbe.username",
  ]);
});
