/**
 * Env-file round trip through the real parsers on a real host (Debian 13):
 * systemd's EnvironmentFile= (in a transient unit, as the services get it),
 * python-dotenv and django-environ must all read back exactly the values the
 * renderer wrote, for generated secrets and for random values over every
 * character the renderer allows.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { randomPasswordArgs } from "../../components/generated-secrets";
import { renderEnvFile } from "../../components/env-file";
import { drawPassword } from "./engine";
import { unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const FILE = "/root/parser-probe.env";

const READERS: Record<string, string> = {
  systemd:
    `systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=${FILE} -p User=pms -- ` +
    `/usr/bin/python3 -c 'import os, json; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("PROBE_")}))'`,
  "python-dotenv":
    `python3 -c 'import json; from dotenv import dotenv_values; ` +
    `print(json.dumps({k: v for k, v in dotenv_values("${FILE}").items() if k.startswith("PROBE_")}))'`,
  "django-environ":
    `env -i python3 -c 'import os, json, environ; environ.Env.read_env("${FILE}"); ` +
    `print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("PROBE_")}))'`,
};

async function roundTrip(fleet: TestFleet, host: TestHost, values: Record<string, string>): Promise<void> {
  const text = renderEnvFile(values, ["parser probe written by renderEnvFile"]);
  const put = await fleet.exec(host, `install -m 600 /dev/stdin ${FILE}`, { stdin: text });
  assert.equal(put.code, 0, put.stderr);
  for (const [parser, cmd] of Object.entries(READERS)) {
    const r = await fleet.exec(host, cmd);
    assert.equal(r.code, 0, `${parser}: ${r.stderr}`);
    const got = JSON.parse(r.stdout) as Record<string, string>;
    for (const [k, v] of Object.entries(values)) {
      assert.equal(
        got[k],
        v,
        `${parser} read ${k} back differently: ${JSON.stringify(v)} -> ${JSON.stringify(got[k])}`,
      );
    }
    assert.equal(Object.keys(got).length, Object.keys(values).length, `${parser}: key count`);
  }
}

/** Every character the renderer accepts in a value: printable ASCII but ' and \, tab, and non-ASCII text ("${" is filtered). */
const allowedChar = fc.oneof(
  fc
    .integer({ min: 0x20, max: 0x7e })
    .map((c) => String.fromCharCode(c))
    .filter((c) => c !== "'" && c !== "\\"),
  fc.constantFrom("\t", "é", "ü", "ß", "中", "😀", "€"),
);

describe("env file round trip through systemd, python-dotenv and django-environ", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  before(async () => {
    fleet = await bootFleet(["parsers"]);
    host = fleet.hosts[0];
  });
  after(async () => fleet?.teardown());

  it("generated secrets (safe and alphanumeric alphabets) come back exactly", async () => {
    const values: Record<string, string> = {};
    for (let i = 0; i < 40; i++) {
      const spec = {
        key: `PROBE_${i}`,
        length: 50 + i,
        alphabet: i % 4 === 0 ? "alphanumeric" : "safe",
        keepers: { rotation: "", rotate: "" },
      } as const;
      values[spec.key] = drawPassword({ ...randomPasswordArgs(spec) });
    }
    await roundTrip(fleet, host, values);
  });

  it("random values over every allowed character come back exactly (property, 4 x 40 values)", async () => {
    const samples = fc.sample(
      fc
        .array(allowedChar, { minLength: 0, maxLength: 60 })
        .map((cs) => cs.join(""))
        .filter((v) => !v.includes("${")),
      { numRuns: 160, seed: 20261125 },
    );
    for (let batch = 0; batch < 4; batch++) {
      const values: Record<string, string> = {};
      samples.slice(batch * 40, batch * 40 + 40).forEach((v, i) => (values[`PROBE_${batch}_${i}`] = v));
      await roundTrip(fleet, host, values);
    }
  });

  it("the awkward cases from the parser notes come back exactly; a backslash or ${ is refused before sending", async () => {
    assert.throws(
      () => renderEnvFile({ PROBE_DQUOTE: '"quoted" \\n' }),
      /the value of PROBE_DQUOTE contains a backslash/,
    );
    await roundTrip(fleet, host, {
      PROBE_DOLLAR: "$HOME$PATH $ {x}",
      PROBE_HASH: "abc #def",
      PROBE_SPACES: "  padded  ",
      PROBE_DQUOTE: '"quoted" n not',
      PROBE_SHELL: "$(id) `id` ; & | < > ( ) ! * ? [ ] { } ~ ^ % @ =",
      PROBE_EMPTY: "",
      PROBE_URL: "postgres://pms:p-_.+=,w@127.0.0.1:5432/poultry_db",
    });
  });
});
