/**
 * `npm run rehearse`: the main job for real, for someone without AWS or a server (Linux, root):
 *
 *   npm ci && npm run rehearse
 *
 * Builds or reuses the real toolchain (tools/real/build.sh: the Pulumi CLI; the upstream Node.js
 * language host, command and random plugins built from their release sources; our aws stand-in,
 * the one exception; Moto for Secrets Manager) and prints each plugin's version and origin
 * (`pulumi plugin ls`, `pulumi about`), builds or restores the host
 * image, boots one throwaway Debian 13 host (systemd, sshd, gunicorn, Celery, PostgreSQL), and
 * runs the real `pulumi up` of this program three times on a local backend: the first deploy, a
 * re-run with nothing changed, and a SECRET_KEY rotation set the way an operator sets it
 * (`pulumi config set --path 'rotate.SECRET_KEY' <today>`). The CLI's own output is printed as it
 * comes (indented), each step timed, then the final fingerprints; everything is torn down.
 *
 * The embedded stack config is the one every host test uses (scenario.ts `fleetConfig`).
 * Production use stays `pulumi up --stack prod`.
 */
import { PulumiStack, toolOrigins } from "./pulumi-cli";
import { appKeyFingerprint, celeryRoundTrip, fleetConfig, keyFingerprint } from "./scenario";
import { bootFleet, ensureImage, hostTestsUnavailableReason, TestFleet } from "./testhost";

const t0 = Date.now();
const since = (t: number): string => `${((Date.now() - t) / 1000).toFixed(1)}s`;
const say = (line: string): void => void process.stdout.write(`[${since(t0).padStart(6)}] ${line}\n`);
/** The CLI's and the build's lines, as they come. */
const relay = (line: string): void => void process.stdout.write(`${line}\n`);

async function step<T>(title: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  say(`${title} ...`);
  const v = await fn();
  say(`${title}: done in ${since(t)}`);
  return v;
}

async function main(): Promise<number> {
  const why = hostTestsUnavailableReason();
  if (why) {
    process.stderr.write(`rehearse needs a Linux machine where you are root: ${why}\n`);
    return 2;
  }
  await step("build or restore the host image", () => ensureImage((l) => say(`  ${l}`)));
  const fleet: TestFleet = await step("boot a throwaway host", () => bootFleet(["rehearsal"], { httpHost: "public" }));
  let stack: PulumiStack | undefined;
  try {
    const host = fleet.hosts[0];
    say(`host ${host.name}: ssh root@${host.address} -p ${host.sshPort} (pinned key ${host.hostKey.slice(0, 30)}...)`);
    stack = await step("real toolchain (tools/real/build.sh), Moto, local backend, stack dev", () =>
      PulumiStack.create({ stack: "dev", log: relay }),
    );
    const s = stack;
    await step("the plugins this run uses: pulumi plugin ls, pulumi about, where each came from", async () => {
      // The CLI's own output is relayed as it comes (PulumiStack's log).
      for (const args of [["plugin", "ls"], ["about"]]) {
        const r = await s.run(args);
        if (r.code !== 0) throw new Error(r.output);
      }
      for (const [tool, origin] of toolOrigins(s.bin)) relay(`    ${tool}: ${origin}`);
    });
    await step("pulumi config set ... (stack file Pulumi.dev.yaml; secrets with --secret, on stdin)", () =>
      s.setConfig(fleetConfig(fleet, [host], { stableSeconds: 5 })),
    );

    const first = await step("pulumi up #1: first deploy", () => s.up());
    if (first.code !== 0) throw new Error("the first deploy failed (output above)");
    const key1 = s.generatedValue("SECRET_KEY");
    say(
      `running app signs with key ${(await appKeyFingerprint(fleet, host)).secret_key} (expected ${keyFingerprint(key1)})`,
    );
    await step("Celery task round trip", async () => {
      if (!(await celeryRoundTrip(fleet, host, "rehearsal-1"))) throw new Error("Celery task row not written");
    });

    const again = await step("pulumi up #2: nothing changed", () => s.up());
    if (again.code !== 0) throw new Error("the no-op run failed (output above)");

    const today = new Date().toISOString().slice(0, 10);
    const set = await step(`pulumi config set --path 'rotate.SECRET_KEY' ${today}`, () =>
      s.run(["config", "set", "--path", "rotate.SECRET_KEY", today]),
    );
    if (set.code !== 0) throw new Error(set.output);
    const rotated = await step("pulumi up #3: SECRET_KEY rotation", () => s.up());
    if (rotated.code !== 0) throw new Error("the rotation failed (output above)");
    const key2 = s.generatedValue("SECRET_KEY");
    const running = await appKeyFingerprint(fleet, host);
    if (running.secret_key !== keyFingerprint(key2)) throw new Error("the app does not run the new key");

    const outputs = await s.stackOutput();
    const hosts = outputs.hosts as Record<string, { envFingerprint: string }>;
    const leaks = s.leaks();
    say("final state:");
    say(`  secretVersionId        ${String(outputs.secretVersionId)}`);
    say(`  keepers                ${JSON.stringify(outputs.keepers)}`);
    say(`  env fingerprint        ${hosts[host.name].envFingerprint} (host ${host.name})`);
    say(`  SECRET_KEY fingerprint ${keyFingerprint(key1)} -> ${running.secret_key} (reported by the running app)`);
    say(`  secret values in the CLI's output: ${leaks.length === 0 ? "none" : leaks.join("; ")}`);
    return leaks.length === 0 ? 0 : 1;
  } finally {
    await stack?.dispose();
    await step("tear down", () => fleet.teardown());
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`rehearsal failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
