import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStore, StoreInput } from "../components/config/store";
import { parseSshSettings, refuseSshPrivateKey } from "../components/config/ssh";
import { assertProblem, check } from "./config-check";
import { SENTINEL_SSH_KEY } from "./fixtures";

const store = (input: StoreInput, production = false) => check((p) => parseStore(p, input, "dev", production));

test("store defaults: pms-backend/<stack>, AWS-managed key, 30-day window on production and 7 elsewhere", () => {
  assert.deepEqual(store({}).result, { secretName: "pms-backend/dev", kmsKeyId: undefined, recoveryWindowInDays: 7 });
  assert.equal(store({}, true).result.recoveryWindowInDays, 30);
  assert.equal(store({ kmsKeyId: "alias/pms-secrets-prod" }).result.kmsKeyId, "alias/pms-secrets-prod");
});

const cases: Array<[string, StoreInput, string, RegExp]> = [
  ["window 6", { recoveryWindowInDays: "6" }, "recoveryWindowInDays", /from 7 to 30/],
  ["window 31", { recoveryWindowInDays: "31" }, "recoveryWindowInDays", /from 7 to 30/],
  ["window text", { recoveryWindowInDays: "a month" }, "recoveryWindowInDays", /not a whole number/],
  ["bad name", { secretName: "pms backend" }, "secretName", /not a valid Secrets Manager name/],
  ["kms placeholder", { kmsKeyId: "alias/REPLACE-with-your-kms-key" }, "kmsKeyId", /placeholder.*aws kms list-aliases/],
];
for (const [title, input, key, what] of cases) {
  test(`store: ${title} -> ${key}`, () => {
    assertProblem(store(input).problems, key, what);
  });
}

test("ssh: limits are bounded; the deploy key is no setting (refused whenever set, even empty)", () => {
  assert.deepEqual(check((p) => parseSshSettings(p, undefined, "5")).result, { timeoutSeconds: 10, attempts: 5 });
  assertProblem(check((p) => parseSshSettings(p, "0", undefined)).problems, "sshTimeoutSeconds", /from 1 to 300/);
  assertProblem(check((p) => parseSshSettings(p, undefined, "21")).problems, "sshAttempts", /from 1 to 20/);
  assert.deepEqual(check((p) => refuseSshPrivateKey(p, undefined)).problems, []);
  for (const value of [SENTINEL_SSH_KEY, ""]) {
    assertProblem(check((p) => refuseSshPrivateKey(p, value)).problems, "sshPrivateKey", /is no longer read/);
  }
});
