/** Policy pack unit tests: what the policy SDK really passes (through its analyze RPC handler). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { policies } from "../policy/policies";
import { readProp, UNKNOWN } from "../policy/props";
import { UNKNOWN_STRING, unknownCheckingProxy, urnOf, DB_PASSWORD, ROLLOUT, rolloutProps } from "./policy-harness";

describe("what the policy SDK really passes (through its analyze RPC handler)", () => {
  // Internal modules of @pulumi/policy and the protobuf classes it reads; used only to pin behaviour.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const server = require("@pulumi/policy/server") as {
    makeAnalyzeRpcFun: (
      n: string,
      v: string,
      level: string,
      p: unknown[],
    ) => (call: unknown, cb: (err: unknown, resp: unknown) => void) => Promise<void>;
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const analyzer = require("@pulumi/pulumi/proto/analyzer_pb") as Record<
    string,
    new () => Record<string, (v?: unknown) => unknown>
  >;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Struct } = require("google-protobuf/google/protobuf/struct_pb") as {
    Struct: { fromJavaScript(v: unknown): unknown };
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const rpc = require("@pulumi/pulumi/runtime/rpc") as { specialSigKey: string; specialSecretSig: string };
  /** How the engine sends a secret value: `{ <sig key>: <secret sig>, value }`. */
  const SECRET_SIG = { [rpc.specialSigKey]: rpc.specialSecretSig };

  async function analyze(type: string, name: string, props: Record<string, unknown>): Promise<string[]> {
    const request = new analyzer.AnalyzeRequest();
    request.setType(type);
    request.setName(name);
    request.setUrn(urnOf("prod", type, name));
    request.setProperties(Struct.fromJavaScript(props));
    request.setOptions(new analyzer.AnalyzerResourceOptions());
    const fn = server.makeAnalyzeRpcFun("pms-secrets", "0.1.0", "mandatory", policies);
    const response = await new Promise<Record<string, () => unknown>>(
      (resolve, reject) =>
        void fn({ request }, (err: unknown, resp: unknown) =>
          err
            ? reject(err instanceof Error ? err : new Error(JSON.stringify(err)))
            : resolve(resp as Record<string, () => unknown>),
        ),
    );
    return (response.getDiagnosticsList() as Array<Record<string, () => string>>).map(
      (d) => `${d.getPolicyname()}: ${d.getMessage()}`,
    );
  }

  it("hands a secret input (stdin) to the policy in clear text, so a leak of it is caught", async () => {
    const props = rolloutProps({
      create: `${ROLLOUT} ${DB_PASSWORD}`,
      stdin: { ...SECRET_SIG, value: `DB_PASSWORD='${DB_PASSWORD}'\n` },
    });
    const diagnostics = await analyze("command:remote:Command", "web-1-rollout", props);
    assert.ok(
      diagnostics.some((d) =>
        /command-text-no-secret-material: .*contains the value of DB_PASSWORD from the stdin/s.test(d),
      ),
      diagnostics.join("\n"),
    );
  });

  it("an unknown stdin during preview produces no error and no 'can't run policy' advisory", async () => {
    const diagnostics = await analyze(
      "command:remote:Command",
      "web-1-rollout",
      rolloutProps({ stdin: UNKNOWN_STRING }),
    );
    assert.deepEqual(diagnostics, []);
  });

  it("readProp maps the SDK's unknown sentinel to UNKNOWN instead of throwing", () => {
    const proxied = unknownCheckingProxy({ result: UNKNOWN_STRING, length: 64 });
    assert.throws(() => proxied.result, /can't be known during preview/);
    assert.equal(readProp(proxied, "result"), UNKNOWN);
    assert.equal(readProp(proxied, "length"), 64);
  });
});
