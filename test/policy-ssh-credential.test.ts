/** Policy pack unit tests: remote-command-no-ssh-credential (no deploy key in any state). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { remoteCommandNoSshCredential } from "../policy/policies";
import { resourceArgs, runResource, PRIVATE_KEY, rolloutProps } from "./policy-harness";

describe("remote-command-no-ssh-credential", () => {
  const type = "command:remote:Command";
  const connection = (extra: Record<string, unknown>) => ({ ...(rolloutProps().connection as object), ...extra });

  it("passes the program's rollout: the connection holds no credential (the agent logs in)", async () => {
    for (const stack of ["prod", "dev"]) {
      const out = await runResource(
        remoteCommandNoSshCredential,
        resourceArgs(type, "web1-rollout", rolloutProps(), { stack }),
      );
      assert.deepEqual(out.violations, []);
    }
  });

  it("refuses a private key, a key passphrase, a password and a proxy's key on any stack, never echoing them", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ privateKey: PRIVATE_KEY }, /connection\.privateKey is set, so the credential is stored in the state/],
      [{ privateKey: PRIVATE_KEY, privateKeyPassword: "hunter2-passphrase" }, /connection\.privateKeyPassword is set/],
      [{ password: "hunter2-password" }, /connection\.password is set/],
      [{ proxy: { host: "bastion", privateKey: PRIVATE_KEY } }, /connection\.proxy\.privateKey is set/],
    ];
    for (const [extra, expected] of cases) {
      for (const stack of ["prod", "dev"]) {
        const props = rolloutProps({ connection: connection(extra) });
        const out = await runResource(
          remoteCommandNoSshCredential,
          resourceArgs(type, "web1-rollout", props, { stack }),
        );
        assert.ok(
          out.violations.some((v) => expected.test(v)),
          `${stack}: ${JSON.stringify(out.violations)}`,
        );
        for (const v of out.violations) {
          assert.match(v, /SSH agent/);
          assert.doesNotMatch(v, /b3BlbnNz|hunter2/, "the credential is never echoed");
        }
      }
    }
  });

  it("ignores other resource types", async () => {
    const out = await runResource(
      remoteCommandNoSshCredential,
      resourceArgs("command:local:Command", "x", { create: "true", connection: { privateKey: PRIVATE_KEY } }),
    );
    assert.deepEqual(out.violations, []);
  });
});
