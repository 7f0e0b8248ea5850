/** Policy pack unit tests: env file parsing used to find a command's own secrets. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseEnvFile } from "../policy/secret-scan";

describe("env file parsing used to find a command's own secrets", () => {
  it("reads KEY='value' lines and skips comments", () => {
    assert.deepEqual(parseEnvFile("# c\nSECRET_KEY='a b'\nexport DEBUG=False\n\nX=\"y\"\n"), [
      ["SECRET_KEY", "a b"],
      ["DEBUG", "False"],
      ["X", "y"],
    ]);
  });
});
