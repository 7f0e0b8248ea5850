/** Policy pack unit tests: remote-command-host-key-pinned. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { remoteCommandHostKeyPinned } from "../policy/policies";
import { resourceArgs, runResource, PRIVATE_KEY, rolloutProps } from "./policy-harness";

describe("remote-command-host-key-pinned", () => {
  const type = "command:remote:Command";

  it("passes a production command with a pinned ed25519 host key", async () => {
    const out = await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "web-1-rollout", rolloutProps()));
    assert.deepEqual(out.violations, []);
  });

  it("rejects a production command without hostKey, naming the host and how to fix it", async () => {
    const props = rolloutProps();
    delete (props.connection as Record<string, unknown>).hostKey;
    const out = await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "web-1-rollout", props));
    assert.equal(out.violations.length, 1);
    assert.match(
      out.violations[0],
      /web-1-rollout \(host 203\.0\.113\.10\) on production stack "prod" has no connection\.hostKey/,
    );
    assert.match(out.violations[0], /ssh-keyscan -t ed25519/);
    assert.doesNotMatch(out.violations[0], /PRIVATE KEY|b3BlbnNz/, "the private key is never echoed");
  });

  it("rejects an empty hostKey on prod but allows a missing one on dev", async () => {
    const empty = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY, hostKey: "  " } });
    assert.equal(
      (await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "h-rollout", empty))).violations.length,
      1,
    );
    const missing = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY } });
    assert.deepEqual(
      (await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "h-rollout", missing, { stack: "dev" })))
        .violations,
      [],
    );
  });

  it("honours productionStacks from policy config", async () => {
    const missing = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY } });
    const out = await runResource(
      remoteCommandHostKeyPinned,
      resourceArgs(type, "h-rollout", missing, { stack: "staging", config: { productionStacks: ["staging"] } }),
    );
    assert.match(out.violations[0] ?? "", /production stack "staging"/);
  });

  it("rejects a malformed hostKey on any stack", async () => {
    for (const bad of [
      "AAAAC3NzaC1lZDI1NTE5",
      "203.0.113.10 ssh-ed25519 AAAAC3Nza",
      "ssh-ed25519 AAAA\nssh-rsa BBBB",
      // Well formed, but SHA-1 only with the command provider (refused by OpenSSH >= 8.8).
      "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7",
    ]) {
      const props = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY, hostKey: bad } });
      const out = await runResource(
        remoteCommandHostKeyPinned,
        resourceArgs(type, "h-rollout", props, { stack: "dev" }),
      );
      assert.match(out.violations[0] ?? "", /not one authorized_keys-format key/, bad);
    }
  });

  it("ignores other resource types", async () => {
    const out = await runResource(
      remoteCommandHostKeyPinned,
      resourceArgs("command:local:Command", "x", { create: "true" }),
    );
    assert.deepEqual(out.violations, []);
  });
});
