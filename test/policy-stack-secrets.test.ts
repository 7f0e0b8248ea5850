/** Policy pack unit tests: command-text-no-stack-secret (stack level). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { commandTextNoStackSecret } from "../policy/policies";
import {
  UNKNOWN_STRING,
  stackResource,
  runStack,
  SECRET_KEY,
  DB_PASSWORD,
  ROLLOUT,
  rolloutProps,
} from "./policy-harness";

describe("command-text-no-stack-secret (stack level)", () => {
  const password = stackResource("random:index/randomPassword:RandomPassword", "generated-SECRET_KEY", {
    length: 64,
    result: SECRET_KEY,
  });
  const version = stackResource("aws:secretsmanager/secretVersion:SecretVersion", "store-version", {
    secretString: JSON.stringify({
      SECRET_KEY,
      DB_PASSWORD,
      HUBTEL_CLIENT_ID: "hubtel-client-1234",
      DEBUG: "False",
      DB_NAME: "poultry_db",
    }),
  });

  it("passes when no command text carries a stack secret (plain settings may appear)", async () => {
    const command = stackResource(
      "command:remote:Command",
      "web-1-rollout",
      rolloutProps({ create: `${ROLLOUT} --db poultry_db` }),
    );
    assert.deepEqual(await runStack(commandTextNoStackSecret, [password, version, command]), []);
  });

  it("reports a generated secret in another command's text, against that command's URN", async () => {
    const command = stackResource(
      "command:remote:Command",
      "web-2-rollout",
      rolloutProps({ stdin: "", create: `${ROLLOUT} # ${SECRET_KEY}` }),
    );
    const violations = await runStack(commandTextNoStackSecret, [password, version, command]);
    assert.ok(
      violations.some((v) => /web-2-rollout: create contains the result of generated-SECRET_KEY/.test(v.message)),
    );
    assert.ok(violations.every((v) => v.urn === command.urn && !v.message.includes(SECRET_KEY)));
  });

  it("reports a supplied credential from the Secrets Manager document", async () => {
    const command = stackResource("command:local:Command", "notify", {
      create: "curl -d client=hubtel-client-1234 https://example.com",
    });
    const violations = await runStack(commandTextNoStackSecret, [version, command]);
    assert.match(
      violations[0]?.message ?? "",
      /notify: create contains the value of HUBTEL_CLIENT_ID in store-version\.secretString/,
    );
  });

  it("during preview, an unknown RandomPassword result and secretString are skipped", async () => {
    const unknownPassword = stackResource("random:index/randomPassword:RandomPassword", "generated-SECRET_KEY", {
      length: 64,
      result: UNKNOWN_STRING,
    });
    const unknownVersion = stackResource("aws:secretsmanager/secretVersion:SecretVersion", "store-version", {
      secretString: UNKNOWN_STRING,
    });
    const command = stackResource("command:remote:Command", "web-1-rollout", rolloutProps({ stdin: UNKNOWN_STRING }));
    assert.deepEqual(await runStack(commandTextNoStackSecret, [unknownPassword, unknownVersion, command]), []);
  });
});
