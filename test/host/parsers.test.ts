/**
 * Env-file round trip through the real parsers on a real host (Debian 13):
 * systemd's EnvironmentFile= (in a transient unit, as the services get it),
 * python-dotenv and django-environ must all read back exactly the values the
 * renderer wrote, for generated secrets and for random values over every
 * character the renderer allows.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import fc from "fast-check";
import { randomPasswordArgs } from "../../components/generated-secrets";
import { renderEnvFile } from "../../components/env-file";
import { drawPassword, unavailable } from "./scenario";
import { APP, bootFleet, hostTestsUnavailableReason, LEGACY_ENV, TestFleet, TestHost } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const FILE = "/root/parser-probe.env";

/** The app's own interpreter (the venv the units run), as the app would parse the file. */
const PYTHON = `${APP.venv}/bin/python`;

/** Commands printing, as JSON, the variables named by the Python expression `keep(k)` that each parser reads from FILE. */
function readers(keep: string): Record<string, string> {
  return {
    systemd:
      `systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=${FILE} -p User=pms -- ` +
      `${PYTHON} -c 'import os, json; print(json.dumps({k: v for k, v in os.environ.items() if ${keep}}))'`,
    "python-dotenv":
      `${PYTHON} -c 'import json; from dotenv import dotenv_values; ` +
      `print(json.dumps({k: v for k, v in dotenv_values("${FILE}").items() if ${keep}}))'`,
    "django-environ":
      `env -i ${PYTHON} -c 'import os, json, environ; environ.Env.read_env("${FILE}"); ` +
      `print(json.dumps({k: v for k, v in os.environ.items() if ${keep}}))'`,
  };
}

const READERS = readers('k.startswith("PROBE_")');

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

/** Whether the renderer accepts `v` as a value (the property covers exactly those). */
function rendersAlone(v: string): boolean {
  try {
    renderEnvFile({ PROBE: v });
    return true;
  } catch {
    return false;
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
        .filter((v) => rendersAlone(v)),
      { numRuns: 160, seed: 20261125 },
    );
    for (let batch = 0; batch < 4; batch++) {
      const values: Record<string, string> = {};
      samples.slice(batch * 40, batch * 40 + 40).forEach((v, i) => (values[`PROBE_${batch}_${i}`] = v));
      await roundTrip(fleet, host, values);
    }
  });

  it("the awkward cases from the parser notes come back exactly; a backslash, ${ or a leading $ is refused before sending", async () => {
    assert.throws(
      () => renderEnvFile({ PROBE_DQUOTE: '"quoted" \\n' }),
      /the value of PROBE_DQUOTE contains a backslash/,
    );
    assert.throws(() => renderEnvFile({ PROBE_PROXY: "$HOME" }), /the value of PROBE_PROXY contains a leading "\$"/);
    await roundTrip(fleet, host, {
      PROBE_DOLLAR: "x$HOME$PATH $ {x}",
      PROBE_HASH: "abc #def",
      PROBE_SPACES: "  padded  ",
      PROBE_DQUOTE: '"quoted" n not',
      PROBE_SHELL: "`id` $(id) ; & | < > ( ) ! * ? [ ] { } ~ ^ % @ =",
      PROBE_EMPTY: "",
      PROBE_URL: "postgres://pms:p-_.+=,w@127.0.0.1:5432/poultry_db",
    });
  });

  it("the legacy-env variant's hand-written file: bash, python-dotenv and django-environ read it; systemd rejects every export line", async () => {
    const text = fs.readFileSync(path.join(__dirname, "units", "variants", "env", "env.production.legacy"), "utf8");
    const put = await fleet.exec(host, `install -m 600 /dev/stdin ${FILE}`, { stdin: text });
    assert.equal(put.code, 0, put.stderr);
    const byParser = {
      ...readers("True"),
      // How the operators used it: sourced by a shell (the legacy-env units do the same).
      bash:
        `env -i bash -c 'set -a; . ${FILE}; set +a; ` +
        `exec ${PYTHON} -c "import os, json; print(json.dumps(dict(os.environ)))"'`,
    };
    const got: Record<string, Record<string, string>> = {};
    for (const [parser, cmd] of Object.entries(byParser)) {
      const r = await fleet.exec(host, cmd);
      assert.equal(r.code, 0, `${parser}: ${r.stderr}`);
      const all = JSON.parse(r.stdout) as Record<string, string>;
      got[parser] = Object.fromEntries(Object.entries(all).filter(([k]) => k in LEGACY_ENV));
    }
    assert.deepEqual(got.systemd, {}, "systemd ignores `export KEY=...` lines");
    for (const parser of ["bash", "python-dotenv", "django-environ"]) {
      assert.deepEqual(got[parser], { ...LEGACY_ENV }, `${parser} reads the legacy file as LEGACY_ENV says`);
    }
  });
});
