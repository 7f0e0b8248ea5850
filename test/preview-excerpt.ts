/**
 * `npm run preview:excerpt [-- --write]`: docs/PREVIEW.md's preview excerpt, captured from the real
 * `pulumi preview --diff` (test/host/pulumi-cli.ts). Two throwaway hosts (web1, web2) are
 * booted, the program is deployed to them as a `prod` stack, then a SECRET_KEY rotation
 * (`rotate.SECRET_KEY`) is previewed. What changes from run to run is masked deterministically:
 * env fingerprints (they hash freshly generated keys) become aaaa…, bbbb…, in order of first
 * appearance; random ids (secret version and provider UUIDs, the ARN suffix, command ids) and
 * the progress dots become fixed text. Prints the excerpt; with
 * --write, replaces the code block in docs/PREVIEW.md. test/host/preview.test.ts keeps them in sync.
 * Linux and root (like every host test).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CliResult, PulumiStack } from "./host/pulumi-cli";
import { fleetConfig } from "./host/scenario";
import { bootFleet, TestFleet } from "./host/testhost";

/** The page that shows the excerpt (it moved there from the README). */
export const PREVIEW_DOC = path.join(__dirname, "..", "docs", "PREVIEW.md");
export const PREVIEW_HEADING = "## What a reviewer sees in a preview";
/** The keepers of the captured preview: the deployed stack, then the rotation. */
export const DEPLOYED_ROTATION = "2026-11-01";
export const ROTATE_SECRET_KEY = { SECRET_KEY: "2026-11-25" };

export interface DeployedProd {
  fleet: TestFleet;
  stack: PulumiStack;
  /** The config the stack was deployed with. */
  config: Record<string, unknown>;
}

/** Boots web1+web2, deploys a prod stack to them, runs `fn`, tears everything down. */
export async function withDeployedProd<T>(log: (l: string) => void, fn: (d: DeployedProd) => Promise<T>): Promise<T> {
  const fleet = await bootFleet(["web1", "web2"], log, { httpHost: "public" });
  let stack: PulumiStack | undefined;
  try {
    stack = await PulumiStack.create({ stack: "prod", log });
    const config = fleetConfig(fleet, fleet.hosts, { overrides: { rotation: DEPLOYED_ROTATION } });
    await stack.setConfig(config);
    const up = await stack.up();
    if (up.code !== 0) throw new Error(`the first deploy failed:\n${up.output}`);
    return await fn({ fleet, stack, config });
  } finally {
    await stack?.dispose();
    await fleet.teardown();
  }
}

/** `pulumi preview --diff` of a SECRET_KEY rotation on the deployed stack. */
export async function previewRotation(d: DeployedProd): Promise<CliResult> {
  await d.stack.setConfig({ ...d.config, rotate: ROTATE_SECRET_KEY });
  const r = await d.stack.preview();
  await d.stack.setConfig(d.config);
  if (r.code !== 0) throw new Error(`pulumi preview failed:\n${r.output}`);
  return r;
}

/** Replaces what differs between runs with stable stand-ins (see the header). */
export function maskPreview(text: string): string {
  const fingerprints = new Map<string, string>();
  const stand = (fp: string): string => {
    if (!fingerprints.has(fp)) fingerprints.set(fp, "abcdef"[fingerprints.size % 6].repeat(16));
    return fingerprints.get(fp) as string;
  };
  return (
    text
      // Progress dots: their number depends on how long the preview took.
      .replace(/^@ .*\n/gm, "")
      .replace(/(env:|envFingerprint\s*: ")([0-9a-f]{16})/g, (_m, pre: string, fp: string) => `${pre}${stand(fp)}`)
      // Secret version ids and provider ids are random UUIDs.
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "00000000-0000-4000-8000-000000000000")
      // Secrets Manager appends 6 random characters to a secret's ARN.
      .replace(/(:secret:[^"|\]\s]*)-[A-Za-z0-9]{6}(?=["|\]\s])/g, "$1-XXXXXX")
      // A command's id is its name plus 8 random hex digits.
      .replace(/(\[id=[a-z0-9-]+-(?:rollout|accept))[0-9a-f]{8}\]/g, "$1xxxxxxxx]")
      .replace(/[ \t]+$/gm, "")
      .trimEnd()
  );
}

/** The code block under the preview page's heading. */
export function readmeExcerpt(readme: string): string {
  const at = readme.indexOf(PREVIEW_HEADING);
  if (at < 0) throw new Error(`docs/PREVIEW.md has no '${PREVIEW_HEADING}' section`);
  const match = /```\n([\s\S]*?)\n```/.exec(readme.slice(at));
  if (!match) throw new Error("the preview section of docs/PREVIEW.md has no code block");
  return match[1];
}

export function withExcerpt(readme: string, excerpt: string): string {
  const at = readme.indexOf(PREVIEW_HEADING);
  const section = readme.slice(at);
  const match = /```\n([\s\S]*?)\n```/.exec(section);
  if (at < 0 || !match) throw new Error("docs/PREVIEW.md has no preview code block to replace");
  const start = at + match.index;
  return `${readme.slice(0, start)}\`\`\`\n${excerpt}\n\`\`\`${readme.slice(start + match[0].length)}`;
}

if (require.main === module) {
  const write = process.argv.includes("--write");
  const log = (l: string): void => {
    if (process.env.PMS_TESTHOST_VERBOSE) process.stderr.write(`${l}\n`);
  };
  withDeployedProd(log, async (d) => maskPreview((await previewRotation(d)).output)).then(
    (excerpt) => {
      if (write) {
        fs.writeFileSync(PREVIEW_DOC, withExcerpt(fs.readFileSync(PREVIEW_DOC, "utf8"), excerpt));
        process.stderr.write(`docs/PREVIEW.md: preview excerpt updated (${excerpt.split("\n").length} lines)\n`);
      } else process.stdout.write(`${excerpt}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`preview:excerpt failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
