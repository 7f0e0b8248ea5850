/** Policy pack unit tests: generated-secret-strength. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generatedSecretStrength } from "../policy/policies";
import { SAFE_SPECIALS } from "../policy/policies/secret-strength";
import { UNKNOWN_STRING, resourceArgs, runResource, SECRET_KEY } from "./policy-harness";

describe("generated-secret-strength", () => {
  const type = "random:index/randomPassword:RandomPassword";
  const good = {
    length: 64,
    special: true,
    overrideSpecial: "-_.+=,",
    upper: true,
    lower: true,
    numeric: true,
    minLower: 1,
    minUpper: 1,
    minNumeric: 1,
    minSpecial: 1,
    keepers: { rotation: "2026-11-25", rotate: "" },
  };

  it("passes the program's SECRET_KEY and a 32-character other secret", async () => {
    assert.deepEqual(
      (await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", good))).violations,
      [],
    );
    assert.deepEqual(
      (
        await runResource(
          generatedSecretStrength,
          resourceArgs(type, "generated-API_TOKEN", { ...good, length: 32, overrideSpecial: SAFE_SPECIALS }),
        )
      ).violations,
      [],
    );
  });

  it("requires 50 characters for SECRET_KEY and 32 for any other", async () => {
    const short = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { ...good, length: 49 }),
    );
    assert.match(
      short.violations[0] ?? "",
      /generated secret SECRET_KEY \(generated-SECRET_KEY\) is 49 characters long; Django's SECRET_KEY needs at least 50/,
    );
    const other = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-WEBHOOK_SECRET", { ...good, length: 31 }),
    );
    assert.match(
      other.violations[0] ?? "",
      /is 31 characters long; a generated secret needs at least 32\. Set generated\.WEBHOOK_SECRET\.length/,
    );
  });

  it("rejects unsafe specials and names them", async () => {
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { ...good, overrideSpecial: "-_#$'" }),
    );
    assert.equal(out.violations.length, 1);
    assert.match(out.violations[0], /outside the safe set -_\.\+=,: "#", "\$", "'"/);
  });

  it("rejects special characters without overrideSpecial (random's default set is unsafe)", async () => {
    const { overrideSpecial: _drop, ...noOverride } = good;
    const out = await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", noOverride));
    assert.match(out.violations[0] ?? "", /without overrideSpecial/);
    // `special` defaults to true in @pulumi/random.
    const { special: _s, ...noSpecialFlag } = noOverride;
    assert.equal(
      (await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", noSpecialFlag))).violations
        .length,
      1,
    );
  });

  it("accepts special: false with letters and digits only", async () => {
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { length: 60, special: false, overrideSpecial: "#$" }),
    );
    assert.deepEqual(out.violations, []);
  });

  it("rejects a delivered SECRET_KEY with the django-insecure- prefix or under 50 characters", async () => {
    const versionType = "aws:secretsmanager/secretVersion:SecretVersion";
    const insecure = "django-insecure-" + "x9".repeat(30);
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY: insecure }) }),
    );
    assert.match(out.violations[0] ?? "", /SECRET_KEY in store-version\.secretString starts with django-insecure-/);
    assert.ok(!out.violations[0].includes(insecure));
    const short = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY: "abcdefghij" }) }),
    );
    assert.match(short.violations[0] ?? "", /is 10 characters long; Django requires at least 50/);
    const fine = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY }) }),
    );
    assert.deepEqual(fine.violations, []);
    const unknown = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: UNKNOWN_STRING }),
    );
    assert.deepEqual(unknown.violations, [], "unknown during preview: judged at up");
  });
});
