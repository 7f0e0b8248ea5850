/** Policy pack unit tests: rotation-keeper-age (advisory). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rotationKeeperAge } from "../policy/policies";
import { ENV_FINGERPRINT_KEY } from "../components/env-file";
import { keeperAgeFinding, parseKeeperDate } from "../policy/policies/keeper-age";
import { resourceArgs, runResource, isoDaysAgo } from "./policy-harness";

describe("rotation-keeper-age (advisory)", () => {
  const type = "random:index/randomPassword:RandomPassword";
  const withKeepers = (keepers: Record<string, string>) => ({
    length: 64,
    special: true,
    overrideSpecial: "-_",
    keepers,
  });

  it("is quiet for a keeper rotated within maxKeeperAgeDays", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: isoDaysAgo(10), rotate: "" })),
    );
    assert.deepEqual(out.violations, []);
  });

  it("warns when the newest date keeper is older than the default 90 days", async () => {
    const old = isoDaysAgo(120);
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: old, rotate: isoDaysAgo(200) })),
    );
    assert.equal(out.violations.length, 1);
    assert.match(
      out.violations[0],
      new RegExp(`last rotated 12[01] days ago \\(newest keeper rotation=${old}\\), more than the 90 days allowed`),
    );
    assert.match(out.violations[0], /pulumi config set --path 'rotate\.SECRET_KEY'/);
  });

  it("uses the secret's own keeper when it is newer than the global one", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: isoDaysAgo(400), rotate: isoDaysAgo(5) })),
    );
    assert.deepEqual(out.violations, []);
  });

  it("follows maxKeeperAgeDays from policy config", async () => {
    const keepers = withKeepers({ rotation: isoDaysAgo(40) });
    assert.equal(
      (
        await runResource(
          rotationKeeperAge,
          resourceArgs(type, "generated-SECRET_KEY", keepers, { config: { maxKeeperAgeDays: 30 } }),
        )
      ).violations.length,
      1,
    );
    assert.equal(
      (await runResource(rotationKeeperAge, resourceArgs(type, "generated-SECRET_KEY", keepers))).violations.length,
      0,
    );
  });

  it("says the age cannot be judged for a keeper that is not a date, or no keeper", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: "initial" })),
    );
    assert.match(
      out.violations[0] ?? "",
      /keeper rotation="initial" is not an ISO date \(YYYY-MM-DD, optionally followed by a counter: YYYY-MM-DD\.2\), so the age of this secret cannot be judged/,
    );
    const none = await runResource(rotationKeeperAge, resourceArgs(type, "generated-SECRET_KEY", { length: 64 }));
    assert.match(none.violations[0] ?? "", /has no rotation keeper .* cannot be judged/);
  });

  it("leaves out the program's env-fingerprint key: it keys the published fingerprint, never reaches a host or the store, and has no keeper by design", async () => {
    const fingerprintKey = await runResource(
      rotationKeeperAge,
      resourceArgs(type, ENV_FINGERPRINT_KEY.name, { ...ENV_FINGERPRINT_KEY.args }),
    );
    assert.deepEqual(fingerprintKey.violations, []);
    // Any other RandomPassword without a keeper is still reported.
    const other = await runResource(rotationKeeperAge, resourceArgs(type, "some-other-password", { length: 64 }));
    assert.match(other.violations[0] ?? "", /has no rotation keeper .* cannot be judged/);
  });

  it("parses ISO dates strictly", () => {
    assert.equal(parseKeeperDate("2026-11-25"), Date.UTC(2026, 10, 25));
    assert.ok(parseKeeperDate("2026-11-25T10:00:00Z"));
    // The documented convention for a second rotation on one day: the date plus a counter.
    for (const counted of [
      "2026-11-25.2",
      "2026-11-25-2",
      "2026-11-25_b",
      "emergency-2026-11-25",
      "emergency-2026-11-25.2",
    ])
      assert.equal(parseKeeperDate(counted), Date.UTC(2026, 10, 25), counted);
    assert.equal(keeperAgeFinding("s", "K", { rotation: "2026-01-01.3" }, 90, Date.UTC(2026, 2, 1)), undefined);
    assert.match(
      keeperAgeFinding("s", "K", { rotation: "2026-01-01.3" }, 30, Date.UTC(2026, 2, 1)) ?? "",
      /59 days ago/,
    );
    for (const bad of [
      "2026-02-30",
      "25/11/2026",
      "2026-11",
      "v2",
      "",
      "2026-02-30.2",
      "2026-11-25.",
      "2026-11-25 2",
      "emergency-",
      "emergency-2026-02-30",
    ])
      assert.equal(parseKeeperDate(bad), undefined, bad);
    assert.equal(keeperAgeFinding("s", "K", { rotation: "2026-01-01" }, 90, Date.UTC(2026, 2, 1)), undefined);
    assert.match(keeperAgeFinding("s", "K", { rotation: "2026-01-01" }, 30, Date.UTC(2026, 2, 1)) ?? "", /59 days ago/);
  });
});
