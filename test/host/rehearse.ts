/**
 * `npm run rehearse`: the main job, end to end, for someone without AWS or a
 * server. Boots a throwaway Debian 13 host (systemd, sshd, gunicorn, Celery,
 * PostgreSQL), runs the real program's first deploy and then a SECRET_KEY
 * rotation exactly as `pulumi up` would (engine.ts), prints every step with
 * its timing and the final fingerprints, and tears the host down.
 *
 * Only the AWS Secrets Manager calls are not made (the engine model records
 * the secret version instead); everything on the host is real.
 */
import { EngineModel } from "./engine";
import { appKeyFingerprint, celeryRoundTrip, fleetConfig, generatedValue, keyFingerprint } from "./scenario";
import { bootFleet, ensureImage, hostTestsUnavailableReason, TestFleet } from "./testhost";

const t0 = Date.now();
const since = (t: number): string => `${((Date.now() - t) / 1000).toFixed(1)}s`;
const say = (line: string): void => void process.stdout.write(`[${since(t0).padStart(6)}] ${line}\n`);

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
  const fleet: TestFleet = await step("boot a throwaway host", () => bootFleet(["rehearsal"]));
  const engine = new EngineModel("dev", (l) => say(`  ${l}`));
  try {
    const host = fleet.hosts[0];
    say(`host ${host.name}: ssh root@${host.address} -p ${host.sshPort} (pinned key ${host.hostKey.slice(0, 30)}...)`);
    let config = fleetConfig(fleet, [host], { stableSeconds: 5 });

    const first = await step("pulumi up #1: first deploy", () => engine.up(config));
    if (!first.ok) throw new Error(first.errors.join("\n"));
    const key1 = generatedValue(engine, "SECRET_KEY");
    say(
      `running app signs with key ${(await appKeyFingerprint(fleet, host)).secret_key} (expected ${keyFingerprint(key1)})`,
    );
    await step("Celery task round trip", async () => {
      if (!(await celeryRoundTrip(fleet, host, "rehearsal-1"))) throw new Error("Celery task row not written");
    });

    const again = await step("pulumi up #2: nothing changed", () => engine.up(config));
    say(`commands run: ${again.ran.length}`);

    const today = new Date().toISOString().slice(0, 10);
    say(`pulumi config set --path 'rotate.SECRET_KEY' ${today}`);
    config = { ...config, rotate: { SECRET_KEY: today } };
    const rotated = await step("pulumi up #3: SECRET_KEY rotation", () => engine.up(config));
    if (!rotated.ok) throw new Error(rotated.errors.join("\n"));
    const key2 = generatedValue(engine, "SECRET_KEY");
    const running = await appKeyFingerprint(fleet, host);
    if (running.secret_key !== keyFingerprint(key2)) throw new Error("the app does not run the new key");

    const hosts = rotated.outputs.hosts as Record<string, { envFingerprint: string }>;
    say("final state:");
    say(`  secretVersionId        ${String(rotated.outputs.secretVersionId)}`);
    say(`  keepers                ${JSON.stringify(rotated.outputs.keepers)}`);
    say(`  env fingerprint        ${hosts[host.name].envFingerprint} (host ${host.name})`);
    say(`  SECRET_KEY fingerprint ${keyFingerprint(key1)} -> ${running.secret_key} (reported by the running app)`);
    say(`  SSH sessions           ${JSON.stringify(rotated.sshSessions)}`);
    return 0;
  } finally {
    engine.dispose();
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
