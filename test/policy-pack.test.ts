/** Policy pack unit tests: stack and production detection. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { policies } from "../policy/policies";
import { isProductionUrn, stackOfUrn } from "../policy/stack";
import { urnOf } from "./policy-harness";

describe("stack and production detection", () => {
  it("reads the stack name from a URN, including one with a parent type chain", () => {
    assert.equal(
      stackOfUrn("urn:pulumi:prod::pms-secrets::random:index/randomPassword:RandomPassword::generated-SECRET_KEY"),
      "prod",
    );
    assert.equal(stackOfUrn(urnOf("dev", "command:remote:Command", "web-1-rollout", "pms:secrets:HostRollout")), "dev");
    assert.equal(stackOfUrn("not-a-urn"), undefined);
  });

  it("without productionStacks, uses the program's name rule; with it, follows the list", () => {
    const urn = (stack: string) => urnOf(stack, "x:y:Z", "a");
    for (const stack of ["prod", "production", "prd-eu", "live"])
      assert.equal(isProductionUrn(urn(stack), {}), true, stack);
    for (const stack of ["dev", "staging", "preprod"]) assert.equal(isProductionUrn(urn(stack), {}), false, stack);
    assert.equal(isProductionUrn(urn("staging"), { productionStacks: ["prod", "staging"] }), true);
    assert.equal(isProductionUrn(urn("prod"), { productionStacks: ["live"] }), false);
    assert.equal(
      isProductionUrn(urn("prod"), { productionStacks: [] }),
      true,
      "an empty list falls back to the name rule",
    );
  });

  it("policy/config.json configures every policy it names with keys the policy declares", async () => {
    const { readFile } = await import("node:fs/promises");
    const config = JSON.parse(await readFile(path.join(__dirname, "..", "policy", "config.json"), "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    for (const [policyName, values] of Object.entries(config)) {
      const policy = policies.find((p) => p.name === policyName);
      assert.ok(policy, `config.json names unknown policy ${policyName}`);
      for (const key of Object.keys(values)) {
        assert.ok(
          key === "enforcementLevel" || policy.configSchema?.properties[key],
          `${policyName} declares no config key ${key}`,
        );
      }
    }
  });

  it("the pack has unique names, the advisory keeper policy and mandatory others", () => {
    const names = policies.map((p) => p.name);
    assert.equal(new Set(names).size, names.length);
    for (const p of policies) {
      assert.equal(p.enforcementLevel, p.name === "rotation-keeper-age" ? "advisory" : "mandatory", p.name);
    }
  });
});
