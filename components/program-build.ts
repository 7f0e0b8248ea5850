/**
 * The prebuilt program (issue 21): Pulumi runs `bin/index.js` (Pulumi.yaml `main`, runtime option
 * `typescript: false`), compiled once from index.ts and components/ by `npm run build:program`,
 * instead of compiling and type-checking the TypeScript on every program run (a `pulumi up` runs
 * the program twice: its preview and its update).
 *
 * A build that does not match its sources must never deploy: the build records the SHA-256 of
 * every file it was made from (bin/build-manifest.json), and the program, first thing in every
 * preview and update, compares them with the files next to it and refuses to run on any
 * difference, naming each file and the fix. The check reads the sources only (no network, a few
 * ms). Under ts-node or tsx (the program run from index.ts, as the unit tests and the harness's
 * older checkouts do) there is no build to check.
 *
 *   node bin/components/program-build.js --stamp [--root .] [--out bin]   (npm run build:program)
 *   node bin/components/program-build.js --check [--root .] [--out bin]   (exit 1 and the list if stale)
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export const MANIFEST = "build-manifest.json";
/**
 * Directories whose files are copied into the build as they are: the host agent the program sends
 * and whose options table it builds every rollout command from (read at run time).
 */
const COPIED_DIRS = ["agent"];
/** Never part of what a copied directory ships: its tests and the caches tools leave beside them. */
const NOT_SHIPPED = new Set(["tests", "__pycache__", ".mypy_cache", ".ruff_cache"]);
/** Build settings that change the output without being compiled. */
const SETTINGS = ["tsconfig.json", "tsconfig.program.json"];
export const BUILD_FIX = "run `npm run build:program` in the project directory, then run the command again";

export interface Manifest {
  /** Source path relative to the project root (forward slashes) -> SHA-256 hex. */
  sources: Record<string, string>;
}

const sha256 = (file: string): string => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

function walk(dir: string, skip: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!skip.has(e.name)) out.push(...walk(p, skip));
    } else if (e.isFile()) out.push(p);
  }
  return out;
}

const rel = (root: string, p: string): string => path.relative(root, p).split(path.sep).join("/");

/**
 * Completes a compiled build in `outDir` (tsc's output of `root`): copies COPIED_DIRS into it and
 * writes the manifest of every source it holds (each emitted .js back to its .ts, the copied
 * files, the build settings). Returns the manifest.
 */
export function stampBuild(root: string, outDir: string): Manifest {
  const sources: Record<string, string> = {};
  for (const js of walk(outDir).filter((f) => f.endsWith(".js"))) {
    const ts = path.join(root, rel(outDir, js).replace(/\.js$/, ".ts"));
    if (!fs.existsSync(ts)) throw new Error(`${rel(outDir, js)} in the build has no source ${rel(root, ts)}`);
    sources[rel(root, ts)] = sha256(ts);
  }
  if (!("index.ts" in sources)) throw new Error(`${outDir} holds no index.js: compile the program first`);
  for (const dir of COPIED_DIRS) {
    fs.rmSync(path.join(outDir, dir), { recursive: true, force: true });
    for (const f of walk(path.join(root, dir), NOT_SHIPPED)) {
      const copy = path.join(outDir, rel(root, f));
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(f, copy);
      sources[rel(root, f)] = sha256(f);
    }
  }
  for (const f of SETTINGS) if (fs.existsSync(path.join(root, f))) sources[f] = sha256(path.join(root, f));
  const manifest: Manifest = { sources: Object.fromEntries(Object.entries(sources).sort()) };
  fs.writeFileSync(path.join(outDir, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/**
 * What makes the build in `outDir` differ from the sources in `root` (empty: it is their build).
 * Each entry names one file. Also catches a copied file edited in the build, and a source file
 * under components/ that the build does not know (a new module it may import).
 */
export function buildProblems(root: string, outDir: string): string[] {
  const file = path.join(outDir, MANIFEST);
  if (!fs.existsSync(file)) return [`${rel(root, file)} is missing: the build is incomplete or from an older version`];
  let manifest: Manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(file, "utf8")) as Manifest;
  } catch (err) {
    return [`${rel(root, file)} cannot be read (${err instanceof Error ? err.message : String(err)})`];
  }
  const problems: string[] = [];
  for (const [src, hash] of Object.entries(manifest.sources ?? {})) {
    const p = path.join(root, src);
    if (!fs.existsSync(p)) problems.push(`${src} was removed since the build`);
    else if (sha256(p) !== hash) problems.push(`${src} changed since the build`);
    if (COPIED_DIRS.some((d) => src.startsWith(`${d}/`))) {
      const copy = path.join(outDir, src);
      if (!fs.existsSync(copy) || sha256(copy) !== hash) problems.push(`${rel(root, copy)} differs from ${src}`);
    }
  }
  const known = new Set(Object.keys(manifest.sources ?? {}));
  for (const dir of COPIED_DIRS) {
    // A file added to a copied directory (a new agent module) would be missing from what is sent.
    for (const f of walk(path.join(root, dir), NOT_SHIPPED)) {
      if (!known.has(rel(root, f))) problems.push(`${rel(root, f)} is not in the build's manifest`);
    }
  }
  for (const ts of walk(path.join(root, "components")).filter((f) => f.endsWith(".ts"))) {
    const src = rel(root, ts);
    // Modules the program never imports are not compiled; a new one it imports changes an importer.
    if (!known.has(src) && fs.existsSync(path.join(outDir, src.replace(/\.ts$/, ".js")))) {
      problems.push(`${src} is not in the build's manifest`);
    }
  }
  return problems;
}

/** The message a stale build stops the program with (every file named, and the fix). */
export function staleBuildMessage(outDir: string, problems: readonly string[]): string {
  return (
    `The prebuilt program in ${outDir} does not match its sources; nothing was changed:\n` +
    problems.map((p) => `  - ${p}`).join("\n") +
    `\nFix: ${BUILD_FIX}.`
  );
}

/**
 * Throws when this module runs from a build (bin/components/program-build.js) whose sources
 * changed since. `fail` builds the error (the program passes pulumi.RunError: no stack trace).
 */
export function assertCurrentBuild(fail: (message: string) => Error = (m) => new Error(m)): void {
  if (!__filename.endsWith(".js")) return; // run from the TypeScript sources: nothing prebuilt
  const outDir = path.resolve(__dirname, "..");
  const root = path.dirname(outDir);
  const problems = buildProblems(root, outDir);
  if (problems.length > 0) throw fail(staleBuildMessage(rel(root, outDir) || outDir, problems));
}

function main(argv: string[]): number {
  const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const root = path.resolve(opt("--root") ?? process.cwd());
  const outDir = path.resolve(root, opt("--out") ?? "bin");
  if (argv.includes("--stamp")) {
    const m = stampBuild(root, outDir);
    process.stdout.write(`${rel(root, outDir)}: ${Object.keys(m.sources).length} sources recorded in ${MANIFEST}\n`);
    return 0;
  }
  if (argv.includes("--check")) {
    const problems = buildProblems(root, outDir);
    if (problems.length === 0) {
      process.stdout.write(`${rel(root, outDir)} matches its sources\n`);
      return 0;
    }
    process.stderr.write(staleBuildMessage(rel(root, outDir), problems) + "\n");
    return 1;
  }
  process.stderr.write("usage: node bin/components/program-build.js --stamp|--check [--root DIR] [--out DIR]\n");
  return 2;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
