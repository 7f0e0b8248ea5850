/** Policy pack unit tests: command-text-no-secret-material (resource level). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { commandTextNoSecretMaterial } from "../policy/policies";
import { SAFE_SPECIALS } from "../policy/policies/secret-strength";
import { findSecretMaterial, isHighEntropyToken } from "../policy/secret-scan";
import {
  UNKNOWN_STRING,
  resourceArgs,
  runResource,
  SECRET_KEY,
  DB_PASSWORD,
  PRIVATE_KEY,
  ROLLOUT,
  rolloutProps,
} from "./policy-harness";

describe("command-text-no-secret-material (resource level)", () => {
  const type = "command:remote:Command";

  it("passes the program's rollout command: script, paths, hex fingerprints in triggers", async () => {
    const out = await runResource(commandTextNoSecretMaterial, resourceArgs(type, "web-1-rollout", rolloutProps()));
    assert.deepEqual(out.violations, []);
  });

  const leaks: Array<[string, Record<string, unknown>, RegExp]> = [
    ["a PEM key in create", { create: `echo '${PRIVATE_KEY}' > /root/.ssh/id` }, /create contains a PEM private key/],
    [
      "an AWS key id in environment",
      { environment: { AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE" } },
      /environment\.AWS_ACCESS_KEY_ID contains an AWS access key id/,
    ],
    [
      "a PASSWORD= assignment in update",
      { update: "DB_PASSWORD=hunter2hunter2 ./migrate" },
      /update contains a DB_PASSWORD= assignment with a literal value/,
    ],
    [
      "a SECRET_KEY in environment",
      { environment: { SECRET_KEY: "abc123def456" } },
      /environment\.SECRET_KEY contains a SECRET_KEY= assignment/,
    ],
    [
      "a high-entropy token in a trigger",
      { triggers: ["env:0123456789abcdef", "tok:Zx81LkQ0pR7mN2vB9cX4jH6gF3dS5aW1eT8yU0iO"] },
      /triggers\[1\] contains a high-entropy token of \d+ characters/,
    ],
    [
      "the stdin SECRET_KEY in delete",
      { delete: `rm -f /tmp/${SECRET_KEY}` },
      /delete contains the value of SECRET_KEY from the stdin of web-1-rollout/,
    ],
    [
      "the stdin DB_PASSWORD inside create",
      { create: `${ROLLOUT} --password ${DB_PASSWORD}` },
      /create contains the value of DB_PASSWORD from the stdin/,
    ],
  ];
  for (const [label, overrides, expected] of leaks) {
    it(`rejects ${label}, without echoing the value`, async () => {
      const out = await runResource(
        commandTextNoSecretMaterial,
        resourceArgs(type, "web-1-rollout", rolloutProps(overrides)),
      );
      assert.ok(
        out.violations.some((v) => expected.test(v)),
        `expected ${expected} in ${JSON.stringify(out.violations)}`,
      );
      for (const v of out.violations) {
        for (const secret of [
          SECRET_KEY,
          DB_PASSWORD,
          "hunter2hunter2",
          "AKIAIOSFODNN7EXAMPLE",
          "b3BlbnNzaC1rZXkt",
          "Zx81LkQ0pR7m",
          "abc123def456",
        ]) {
          assert.ok(!v.includes(secret), `message echoes a secret: ${v}`);
        }
      }
    });
  }

  it("references to variables are not literal assignments", () => {
    assert.deepEqual(
      findSecretMaterial('SECRET_KEY="${SECRET_KEY:-}"; export DB_PASSWORD=$DB_PASSWORD; grep -q "^SECRET_KEY=" "$f"'),
      [],
    );
  });

  it("during preview, an unknown stdin is skipped and the rest is still checked", async () => {
    const props = rolloutProps({ stdin: UNKNOWN_STRING });
    assert.deepEqual((await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", props))).violations, []);
    const leaking = rolloutProps({ stdin: UNKNOWN_STRING, update: "PASSWORD=abcdefgh1234 run" });
    assert.equal(
      (await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", leaking))).violations.length,
      1,
    );
  });

  it("during preview, an unknown trigger is skipped instead of failing the whole policy", async () => {
    const props = rolloutProps({ triggers: [UNKNOWN_STRING, "script:abc"] });
    assert.deepEqual((await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", props))).violations, []);
  });

  it("property: any safe-alphabet secret of 32+ characters in a command is flagged; hex digests never are", () => {
    const safe = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", ...SAFE_SPECIALS];
    const password = fc
      .array(fc.constantFrom(...safe), { minLength: 32, maxLength: 80 })
      .map((cs) => cs.join(""))
      .filter((s) => /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s));
    fc.assert(fc.property(password, (pw) => findSecretMaterial(`${ROLLOUT} --key ${pw}`).length > 0));
    const hex = fc
      .array(fc.constantFrom(..."0123456789abcdef"), { minLength: 16, maxLength: 128 })
      .map((cs) => cs.join(""));
    fc.assert(
      fc.property(hex, (h) => findSecretMaterial(`env:${h} script:${h}`).length === 0 && !isHighEntropyToken(h)),
    );
  });
});
