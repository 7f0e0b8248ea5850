/**
 * Issue 19 item 6: the env file lives where only root can replace it. Before, it sat in the app
 * directory, which the app user owns: between runs that user could replace `.env.production`
 * with a link to any root-only file, and systemd (reading EnvironmentFile= as root, following
 * links) handed that file's KEY=VALUE lines to the app user's own processes on the next restart.
 * Through the real `pulumi` CLI on one host whose /srv/pms-backend belongs to `pms`:
 *   - a host deployed with the env file in the app directory (what earlier versions wrote) gets a
 *     WARNING naming the directory and the fix on every run;
 *   - the default config then moves the file to /etc/pms-backend once (copy, drop-ins, restart
 *     and proof, old backups along, old copy removed, each said); a re-run touches nothing;
 *   - the attack, as the issue showed it: as `pms`, `ln -sfn /root/other/app.env <env file>`,
 *     then a restart; `pms` must not find OTHER_APP_TOKEN in its gunicorn's /proc/<pid>/environ;
 *   - a production stack with the env file in a directory the app user owns is refused before any
 *     change, with the fix.
 *
 *   node --import tsx --test test/host/env-location.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { commandSteps, PulumiStack } from "./pulumi-cli";
import { appKeyFingerprint, envDiff, fleetConfig, hostFile, keyFingerprint, unavailable } from "./scenario";
import { APP, bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
/** Where earlier versions put the env file: the app directory, owned by the app user. */
const APP_DIR_ENV_FILE = `${APP.dir}/.env.production`;
/** Another app's root-only env, as on a host running more than this app. */
const OTHER_ENV = "/root/other/app.env";
const OTHER_TOKEN = "other-app-token-Zq8Wv3Lr6Nt1Yp4Hx7Kc2Jm5";
/** The keeper of the one rotation below, kept in every later config so nothing rotates again. */
const ROTATED = { rotate: { SECRET_KEY: "envloc-1" } };

describe("the env file where only root can replace it, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  const config = (app: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> => {
    const c = fleetConfig(fleet, [host]);
    return { ...c, app: { ...(c.app as object), ...app }, ...top };
  };
  const sh = async (command: string): Promise<string> => {
    const r = await fleet.exec(host, command);
    assert.equal(r.code, 0, `${command}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  /** The env file the program's drop-in names (what systemd reads), from the host itself. */
  const configuredEnvFile = async (): Promise<string> =>
    (await sh("sed -n 's/^EnvironmentFile=//p' /etc/systemd/system/pms-backend.service.d/50-pms-secrets.conf")).trim();
  const backupDirOf = (file: string): string =>
    `/var/lib/pms-secrets/backups/${createHash("sha256").update(file).digest("hex").slice(0, 16)}`;

  before(async () => {
    fleet = await bootFleet(["envloc"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    assert.equal((await sh(`stat -c %U ${APP.dir}`)).trim(), "pms", "the app user owns the app directory");
    stack = await PulumiStack.create({ stack: "envloc", log });
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("an env file in the app directory (as earlier versions wrote it) gets a WARNING naming the directory and the fix", async () => {
    await stack.setConfig(config({ envFile: APP_DIR_ENV_FILE }));
    const first = await stack.up();
    assert.equal(first.code, 0, first.output);
    // Two generations for the move to carry along: a rotation on top of the first deploy.
    await stack.setConfig(config({ envFile: APP_DIR_ENV_FILE }, ROTATED));
    const r = await stack.up();
    assert.equal(r.code, 0, r.output);
    assert.match(
      r.output,
      /pms-rollout WARNING host=envloc service=- check=env-dir: \/srv\/pms-backend \(the env file's directory\) is writable by uid \d+ \(pms\), its owner: that user can replace \.env\.production with a link to any root-only file between rollouts.*Fix: .*default \/etc\/pms-backend\/\.env\.production/,
    );
    assert.equal(await configuredEnvFile(), APP_DIR_ENV_FILE);
  });

  it("the default moves it to root's /etc/pms-backend once: drop-ins, proof, backups along, old copy removed; a re-run touches nothing", async () => {
    const old = await hostFile(fleet, host, APP_DIR_ENV_FILE);
    assert.ok(old.exists);
    const oldBackups = (await sh(`ls ${backupDirOf(APP_DIR_ENV_FILE)} | grep -c '\\.env$' || true`)).trim();
    assert.ok(Number(oldBackups) >= 1, `backups under the old path: ${oldBackups}`);
    await stack.setConfig(config({}, ROTATED));
    const r = await stack.up();
    assert.equal(r.code, 0, r.output);
    // Same env (same triggers), a new --env-file: an in-place update of the rollout.
    assert.deepEqual(commandSteps(r), ["update envloc-rollout"]);
    assert.match(r.output, /env: created \/etc\/pms-backend \(root 0755\)/);
    assert.match(
      r.output,
      /env: moving \/srv\/pms-backend\/\.env\.production to \/etc\/pms-backend\/\.env\.production/,
    );
    assert.match(r.output, /env: \d+ backup generation\(s\) of \/srv\/pms-backend\/\.env\.production moved to /);
    assert.match(r.output, /env: removed the old copy \/srv\/pms-backend\/\.env\.production/);
    assert.doesNotMatch(r.output, /pms-rollout WARNING/);

    const moved = await configuredEnvFile();
    assert.equal(moved, "/etc/pms-backend/.env.production");
    for (const svc of APP.services) {
      const files = await sh(`systemctl show -p EnvironmentFiles --value ${svc}`);
      assert.ok(!files.includes(APP_DIR_ENV_FILE), `${svc} no longer loads the old path: ${files}`);
    }
    assert.equal((await hostFile(fleet, host, APP_DIR_ENV_FILE)).exists, false, "the old copy is gone");
    const now = await hostFile(fleet, host, moved);
    assert.equal(now.content, old.content, "the same env, byte for byte");
    assert.equal(now.mode, "600");
    assert.equal(now.owner, "root:root");
    assert.deepEqual(envDiff(now.content, stack.sentEnvFile(host.name)), []);
    assert.equal((await sh(`stat -c '%a %U:%G' ${path.posix.dirname(moved)}`)).trim(), "755 root:root");
    assert.equal((await sh(`test -e ${backupDirOf(APP_DIR_ENV_FILE)} && echo left || echo gone`)).trim(), "gone");
    const newBackups = (await sh(`ls ${backupDirOf(moved)} | grep -c '\\.env$' || true`)).trim();
    assert.ok(Number(newBackups) >= Number(oldBackups), `the old generations moved along: ${newBackups}`);
    assert.equal(
      (await appKeyFingerprint(fleet, host)).secret_key,
      keyFingerprint(stack.generatedValue("SECRET_KEY")),
      "the services run the delivered key from the new path",
    );
    assert.equal((await fleet.http(host, "/health/")).status, 200);
    assert.deepEqual(stack.leaks(), []);

    const again = await stack.up();
    assert.equal(again.code, 0, again.output);
    assert.deepEqual(commandSteps(again), [], "a re-run touches nothing");
  });

  it("the app user cannot plant a link to a root-only file as the env file: after a restart its gunicorn holds no OTHER_APP_TOKEN", async () => {
    // The stack as shipped (app.envFile's default); after the move above this changes nothing.
    await stack.setConfig(config({}, ROTATED));
    const deployed = await stack.up();
    assert.equal(deployed.code, 0, deployed.output);
    // Another app's env on the same host, root-only; it has a SECRET_KEY, so our app still starts.
    await fleet.exec(
      host,
      `install -d -m 0700 ${path.posix.dirname(OTHER_ENV)} && install -m 0600 /dev/stdin ${OTHER_ENV}`,
      {
        stdin: `SECRET_KEY=other-app-key-Hq3Lw8Rt5Vz2Nb7Kx4Pc9Jm6Fd1Gs0Ya3Ue8Wr5Tn2\nOTHER_APP_TOKEN=${OTHER_TOKEN}\n`,
      },
    );
    const envFile = await configuredEnvFile();
    const envBefore = await hostFile(fleet, host, envFile);
    // The issue's attack, as the app user, against whatever path the program configured.
    const plant = await fleet.exec(host, `runuser -u pms -- ln -sfn ${OTHER_ENV} ${envFile}`);
    // A crash with Restart= is enough; here: a restart.
    await sh("systemctl restart pms-backend && sleep 3");
    const main = (await sh("systemctl show -p MainPID --value pms-backend")).trim();
    assert.notEqual(main, "0", "gunicorn runs");
    const environ = await fleet.exec(host, `runuser -u pms -- cat /proc/${main}/environ | tr '\\0' '\\n'`);
    assert.equal(environ.code, 0, environ.stderr);
    assert.ok(
      !environ.stdout.includes("OTHER_APP_TOKEN"),
      "the app user read another app's root-only secret from its own process environment",
    );
    assert.ok(!environ.stdout.includes(OTHER_TOKEN));
    assert.notEqual(plant.code, 0, `the app user could replace ${envFile}`);
    assert.match(plant.stderr, /Permission denied/);
    assert.equal((await sh(`stat -c %F ${envFile}`)).trim(), "regular file", "still our file, not a link");
    assert.equal((await hostFile(fleet, host, envFile)).content, envBefore.content);
    assert.equal(
      (await appKeyFingerprint(fleet, host)).secret_key,
      keyFingerprint(stack.generatedValue("SECRET_KEY")),
      "the app runs on the delivered key",
    );
  });

  it("production: an env file in a directory the app user can write is refused before any change, with the fix", async () => {
    const envBefore = await hostFile(fleet, host, "/etc/pms-backend/.env.production");
    await stack.setConfig(config({ envFile: APP_DIR_ENV_FILE }, { ...ROTATED, production: true }));
    const r = await stack.up();
    assert.notEqual(r.code, 0);
    assert.match(
      r.output,
      /pms-rollout FAILED host=envloc service=- check=env-dir: \/srv\/pms-backend \(the env file's directory\) is writable by uid \d+ \(pms\), its owner: .*\(refused on a production stack\)\. Fix: put the env file in a directory only root can write: remove app\.envFile .*; nothing on the host was changed/,
    );
    assert.equal((await hostFile(fleet, host, APP_DIR_ENV_FILE)).exists, false, "nothing written in the app directory");
    assert.deepEqual(await hostFile(fleet, host, "/etc/pms-backend/.env.production"), envBefore);
    assert.equal(await configuredEnvFile(), "/etc/pms-backend/.env.production", "drop-ins untouched");
    assert.deepEqual(stack.leaks(), []);
  });
});
