/** The prebuilt program (issue 21): a build that does not match its sources never runs. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import test from "node:test";
import * as yaml from "js-yaml";
import { buildProblems, MANIFEST, stampBuild, staleBuildMessage } from "../components/program-build";

const REPO = path.join(__dirname, "..");

/** A project with two modules, the host agent, the build settings, and a "compiled" bin/ beside it. */
function project(): { root: string; out: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "pms-program-build-test-"));
  const w = (p: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  };
  w("index.ts", 'import { a } from "./components/a";\nexport = a;\n');
  w("components/a.ts", "export const a = 1;\n");
  w("components/unused.ts", "export const u = 2;\n");
  w("agent/bootstrap.sh", "#!/bin/bash\necho v1\n");
  w("agent/options.json", "[]\n");
  w("agent/pms_agent/worker.py", "V = 1\n");
  // Not shipped: the agent's tests and the caches its tools leave.
  w("agent/tests/test_worker.py", "import unittest\n");
  w("agent/pms_agent/__pycache__/worker.cpython-311.pyc", "\0");
  w("agent/.mypy_cache/3.11/x.json", "{}\n");
  w("tsconfig.json", "{}\n");
  w("tsconfig.program.json", '{ "extends": "./tsconfig.json" }\n');
  // What tsc emits for index.ts and what it imports (unused.ts is not imported: not emitted).
  w("bin/index.js", "module.exports = require('./components/a').a;\n");
  w("bin/components/a.js", "exports.a = 1;\n");
  return { root, out: path.join(root, "bin") };
}

test("a fresh build matches its sources; the manifest lists every compiled module, shipped agent file and setting", () => {
  const { root, out } = project();
  const m = stampBuild(root, out);
  assert.deepEqual(Object.keys(m.sources), [
    "agent/bootstrap.sh",
    "agent/options.json",
    "agent/pms_agent/worker.py",
    "components/a.ts",
    "index.ts",
    "tsconfig.json",
    "tsconfig.program.json",
  ]);
  assert.equal(fs.readFileSync(path.join(out, "agent/bootstrap.sh"), "utf8"), "#!/bin/bash\necho v1\n");
  assert.equal(fs.existsSync(path.join(out, "agent/tests")), false, "the agent's tests are not shipped");
  assert.equal(fs.existsSync(path.join(out, "agent/pms_agent/__pycache__")), false, "nor its bytecode cache");
  assert.deepEqual(buildProblems(root, out), []);
  // Running the agent's tests or lint afterwards leaves new caches: the build stays good.
  fs.writeFileSync(path.join(root, "agent/pms_agent/__pycache__/worker.cpython-311.pyc"), "\0\0");
  fs.mkdirSync(path.join(root, "agent/.ruff_cache"));
  fs.writeFileSync(path.join(root, "agent/.ruff_cache/x"), "y");
  assert.deepEqual(buildProblems(root, out), []);
});

test("an agent module added after the build is named: the build would not send it", () => {
  const { root, out } = project();
  stampBuild(root, out);
  fs.writeFileSync(path.join(root, "agent/pms_agent/proof.py"), "P = 1\n");
  assert.deepEqual(buildProblems(root, out), ["agent/pms_agent/proof.py is not in the build's manifest"]);
});

test("every change since the build is named, file by file: a module, the agent, a setting, a removal", () => {
  const { root, out } = project();
  stampBuild(root, out);
  fs.appendFileSync(path.join(root, "components/a.ts"), "export const b = 2;\n");
  fs.writeFileSync(path.join(root, "agent/bootstrap.sh"), "#!/bin/bash\necho v2\n");
  fs.writeFileSync(path.join(root, "tsconfig.json"), '{ "compilerOptions": { "target": "ES5" } }\n');
  fs.rmSync(path.join(root, "index.ts"));
  assert.deepEqual(buildProblems(root, out).sort(), [
    "agent/bootstrap.sh changed since the build",
    "components/a.ts changed since the build",
    "index.ts was removed since the build",
    "tsconfig.json changed since the build",
  ]);
});

test("the build's own copy of the host agent edited by hand is refused too", () => {
  const { root, out } = project();
  stampBuild(root, out);
  fs.writeFileSync(path.join(out, "agent/pms_agent/worker.py"), "V = 2\n");
  assert.deepEqual(buildProblems(root, out), ["bin/agent/pms_agent/worker.py differs from agent/pms_agent/worker.py"]);
});

test("a build without a manifest (tsc alone, or an older build) is refused, and the message says how to fix it", () => {
  const { root, out } = project();
  const problems = buildProblems(root, out);
  assert.deepEqual(problems, [`bin/${MANIFEST} is missing: the build is incomplete or from an older version`]);
  const msg = staleBuildMessage("bin", problems);
  assert.match(msg, /does not match its sources; nothing was changed/);
  assert.match(msg, /Fix: run `npm run build:program` in the project directory/);
});

test("Pulumi.yaml runs the build (main.js loads bin/index.js, no TypeScript at run time) made by build:program from index.ts", () => {
  const p = yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")) as {
    main?: string;
    runtime: { options: { typescript?: boolean } };
  };
  assert.equal(p.main, "main.js");
  const entry = fs.readFileSync(path.join(REPO, "main.js"), "utf8");
  assert.match(entry, /module\.exports = require\(built\);\s*$/);
  assert.match(entry, /const built = path\.join\(__dirname, "bin", "index\.js"\);/);
  assert.equal(p.runtime.options.typescript, false);
  const tsconfig = JSON.parse(fs.readFileSync(path.join(REPO, "tsconfig.program.json"), "utf8")) as {
    files: string[];
    compilerOptions: { outDir: string };
  };
  assert.deepEqual(tsconfig.files, ["index.ts"]);
  assert.equal(tsconfig.compilerOptions.outDir, "bin");
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  };
  assert.match(
    pkg.scripts["build:program"],
    /tsc -p tsconfig\.program\.json && node bin\/components\/program-build\.js --stamp$/,
  );
  // The entry checks the build before anything else it does.
  const index = fs.readFileSync(path.join(REPO, "index.ts"), "utf8");
  assert.match(index, /export = async \(\) => \{\n {2}assertCurrentBuild\(/);
});
