/** Policy pack unit tests: secrets-manager-production-kms. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { secretsManagerProductionKms } from "../policy/policies";
import { UNKNOWN_STRING, resourceArgs, runResource } from "./policy-harness";

describe("secrets-manager-production-kms", () => {
  const type = "aws:secretsmanager/secret:Secret";
  const good = {
    name: "pms-backend/prod",
    kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    recoveryWindowInDays: 30,
    tags: { Project: "pms-secrets", Stack: "prod", ManagedBy: "pulumi" },
  };

  it("passes a customer-managed key with a 30-day window", async () => {
    assert.deepEqual(
      (await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", good))).violations,
      [],
    );
    const { recoveryWindowInDays: _w, ...awsDefaultWindow } = good;
    assert.deepEqual(
      (await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", awsDefaultWindow))).violations,
      [],
    );
  });

  it("applies to a stack tagged Production by the program (production: true) whatever its name", async () => {
    const { kmsKeyId: _k, ...noKey } = good;
    const tagged = { ...noKey, tags: { ...good.tags, Stack: "staging", Production: "true" } };
    const out = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", tagged, { stack: "staging" }),
    );
    assert.match(out.violations[0] ?? "", /has no kmsKeyId/);
    const untagged = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", noKey, { stack: "staging" }),
    );
    assert.deepEqual(untagged.violations, []);
    assert.ok(untagged.notApplicable);
  });

  it("rejects a missing kmsKeyId and the AWS managed key (alias and alias ARN)", async () => {
    const { kmsKeyId: _k, ...noKey } = good;
    const none = await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", noKey));
    assert.match(
      none.violations[0] ?? "",
      /production stack "prod" has no kmsKeyId, so it is encrypted with the AWS managed key aws\/secretsmanager/,
    );
    for (const managed of ["alias/aws/secretsmanager", "arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager"]) {
      const out = await runResource(
        secretsManagerProductionKms,
        resourceArgs(type, "store-secret", { ...good, kmsKeyId: managed }),
      );
      assert.match(out.violations[0] ?? "", /uses the AWS managed key/);
    }
  });

  it("rejects force delete (0) and a window under 7 days", async () => {
    const zero = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, recoveryWindowInDays: 0 }),
    );
    assert.match(zero.violations[0] ?? "", /recoveryWindowInDays 0: deleting it is immediate and cannot be undone/);
    const six = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, recoveryWindowInDays: 6 }),
    );
    assert.match(six.violations[0] ?? "", /recoveryWindowInDays 6; production needs at least 7 days/);
  });

  it("is not applicable on dev, even with force delete", async () => {
    const out = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { name: "pms-backend/dev", recoveryWindowInDays: 0 }, { stack: "dev" }),
    );
    assert.deepEqual(out.violations, []);
    assert.match(out.notApplicable ?? "", /stack "dev" is not a production stack/);
  });

  it("skips an unknown kmsKeyId during preview but still checks the window", async () => {
    const out = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, kmsKeyId: UNKNOWN_STRING, recoveryWindowInDays: 0 }),
    );
    assert.equal(out.violations.length, 1);
    assert.match(out.violations[0], /recoveryWindowInDays 0/);
  });
});
