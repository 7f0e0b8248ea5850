/**
 * docs/PREVIEW.md's preview excerpt (moved there from the README) is what the real `pulumi preview --diff` prints for a SECRET_KEY
 * rotation of a deployed two-host prod stack (test/preview-excerpt.ts captures it; regenerate
 * with `npm run preview:excerpt -- --write`), it replaces exactly what a rotation should, and
 * no preview shows a secret value.
 *
 *   node --import tsx --test test/host/preview.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { hostSuite } from "./suite";
import {
  DeployedProd,
  maskPreview,
  previewRotation,
  PREVIEW_DOC,
  readmeExcerpt,
  ROTATE_SECRET_KEY,
  withDeployedProd,
} from "../preview-excerpt";
import { CliResult, stepsOf } from "./pulumi-cli";
import { unavailable } from "./scenario";
import { hostTestsUnavailableReason, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** The plan's operations on resource `name` (from the preview's engine events). */
function planOf(r: CliResult, name: string): string[] {
  return stepsOf(r)
    .filter((s) => s.name === name)
    .map((s) => s.op);
}

describe("the preview excerpt of docs/PREVIEW.md, from the real CLI", { skip }, () => {
  let deployed: DeployedProd;
  let rotation: CliResult;
  let plainChange: CliResult;
  let finished: () => void;
  let done: Promise<void>;

  before(async () => {
    // withDeployedProd tears down when its callback returns: keep it open until after().
    let ready: (d: DeployedProd) => void = () => undefined;
    const opened = new Promise<DeployedProd>((res) => (ready = res));
    const held = new Promise<void>((res) => (finished = res));
    done = withDeployedProd(log, async (d) => {
      ready(d);
      await held;
    });
    deployed = await Promise.race([
      opened,
      done.then(() => {
        throw new Error("the stack was torn down before the tests ran");
      }),
    ]);
    rotation = await previewRotation(deployed);
    const env = deployed.config.env as Record<string, unknown>;
    await deployed.stack.setConfig({ ...deployed.config, env: { ...env, DB_HOST: "localhost" } });
    plainChange = await deployed.stack.preview();
    await deployed.stack.setConfig(deployed.config);
  });
  after(async () => {
    finished?.();
    await done;
  });

  it("docs/PREVIEW.md shows exactly what `pulumi preview --diff` prints (masked)", () => {
    const expected = maskPreview(rotation.output);
    assert.equal(
      readmeExcerpt(fs.readFileSync(PREVIEW_DOC, "utf8")),
      expected,
      "docs/PREVIEW.md is stale: run `npm run preview:excerpt -- --write`",
    );
  });

  it("a SECRET_KEY rotation replaces SECRET_KEY, the secret version and both phases' commands of both hosts, not JWT_SIGNING_KEY", () => {
    const text = rotation.output;
    const replaced = [
      "generated-SECRET_KEY",
      "store-version",
      "web1-accept",
      "web2-accept",
      "web1-rollout",
      "web2-rollout",
    ];
    for (const name of replaced) {
      assert.ok(planOf(rotation, name).includes("create-replacement"), `${name}: ${planOf(rotation, name).join(",")}`);
      assert.match(
        text,
        new RegExp(`: \\(replace\\)\\n(\\s+\\[id=.*\\]\\n)?\\s+\\[urn=urn:pulumi:prod::[^\\]]*::${name}\\]`),
      );
    }
    for (const name of ["generated-JWT_SIGNING_KEY", "store-secret"]) {
      assert.deepEqual(planOf(rotation, name), ["same"], name);
      assert.doesNotMatch(text, new RegExp(`::${name}\\]`), `${name} is not in the diff`);
    }
    assert.match(text, new RegExp(`\\+ rotate\\s*: "${ROTATE_SECRET_KEY.SECRET_KEY}"`));
    assert.match(text, /~ stdin\s*: \[secret\] => \[unknown\]/, "the host's stdin changes and stays hidden");
    assert.match(text, /\+-6 to replace/);
    // Two hosts: phase 1 (every -accept) is listed before phase 2 (every -rollout).
    const at = (name: string): number => text.indexOf(`::${name}]`);
    assert.ok(Math.max(at("web1-accept"), at("web2-accept")) < Math.min(at("web1-rollout"), at("web2-rollout")), text);
  });

  it("no preview shows a secret value (generated keys, supplied secrets, the SSH key)", () => {
    assert.ok(deployed.stack.secrets.length >= 6, "the scan knows the stack's secrets");
    assert.deepEqual(deployed.stack.leaks(), []);
  });

  it("a plain setting change previews the new env fingerprint in the rollouts' triggers, no key replaced", () => {
    const text = plainChange.output;
    assert.equal(plainChange.code, 0, text);
    assert.match(text, /~ \[0\]: "env:[0-9a-f]{16}" => "env:[0-9a-f]{16}"/);
    assert.deepEqual(planOf(plainChange, "generated-SECRET_KEY"), ["same"]);
    assert.ok(planOf(plainChange, "web1-rollout").includes("create-replacement"));
  });
});
