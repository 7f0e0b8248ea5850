/** Rotation on a schedule (issue 20): the bump the scheduled-rotation workflow commits. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import yaml from "js-yaml";
import {
  bumpDueKeepers,
  nextKeeper,
  parseCliArgs,
  parseKeyList,
  rotationIntervalDays,
  runScheduledRotation,
  scheduledIntervalDays,
  ScheduledRotationError,
  setRotateKeeper,
} from "../components/scheduled-rotation";
import { keeperAgeFinding } from "../policy/policies/keeper-age";

const root = path.join(__dirname, "..");
const PROD = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
const POLICY_CONFIG = fs.readFileSync(path.join(root, "policy", "config.json"), "utf8");
const N = rotationIntervalDays(POLICY_CONFIG);
const DAY = 24 * 60 * 60 * 1000;
/** The prod file's `rotation` keeper, the date every age below counts from. */
const ROTATION = String((yaml.load(PROD) as { config: Record<string, unknown> }).config["pms-secrets:rotation"]);
const daysAfter = (iso: string, days: number): Date => new Date(Date.parse(`${iso}T00:00:00Z`) + days * DAY);
const configOf = (text: string): Record<string, unknown> =>
  (yaml.load(text) as { config: Record<string, unknown> }).config;

test("N at the keeper-age policy's maxKeeperAgeDays: the PR is due no later than the policy warns", () => {
  assert.equal(
    N,
    (JSON.parse(POLICY_CONFIG) as Record<string, { maxKeeperAgeDays: number }>)["rotation-keeper-age"].maxKeeperAgeDays,
  );
  for (const age of [N - 1, N, N + 1, N + 30]) {
    const today = daysAfter(ROTATION, age);
    const due = bumpDueKeepers(PROD, ["SECRET_KEY"], N, today).due.length > 0;
    const warns =
      keeperAgeFinding("x", "SECRET_KEY", { rotation: ROTATION, rotate: "" }, N, today.getTime()) !== undefined;
    assert.equal(due, age >= N, `age ${age}: due`);
    if (warns) assert.ok(due, `age ${age}: the policy warns, so the schedule has opened its pull request`);
  }
  assert.throws(() => rotationIntervalDays('{"rotation-keeper-age": {}}'), /maxKeeperAgeDays is undefined/);
});

test("a due key gets rotate.<KEY> = today in the prod file; comments, layout and every other setting stay", () => {
  const today = daysAfter(ROTATION, N);
  const iso = today.toISOString().slice(0, 10);
  const r = bumpDueKeepers(PROD, ["SECRET_KEY"], N, today);
  assert.deepEqual(r.due, ["SECRET_KEY"]);
  assert.equal(r.ages.SECRET_KEY, N);
  const before = configOf(PROD);
  const after = configOf(r.text);
  assert.deepEqual(after["pms-secrets:rotate"], { SECRET_KEY: iso });
  delete after["pms-secrets:rotate"];
  assert.deepEqual(after, before, "nothing else changed");
  const removed = PROD.split("\n").filter((l) => !r.text.split("\n").includes(l));
  assert.deepEqual(removed, [], "no line of the file is lost (comments included)");
  assert.equal(r.text.split("\n").length, PROD.split("\n").length + 2, "two lines added");

  const again = bumpDueKeepers(r.text, ["SECRET_KEY"], N, today);
  assert.deepEqual(again.due, [], "the bumped keeper is 0 days old: nothing due");
  assert.equal(again.text, r.text);
});

test("existing rotate map: the key's line replaced in place, other keys kept; the same date gets the .2 counter", () => {
  const text = `config:\n  pms-secrets:generated:\n    SECRET_KEY: {}\n    JWT_SIGNING_KEY: {}\n  pms-secrets:rotate:\n    # keepers\n    JWT_SIGNING_KEY: "2026-01-01"\n    SECRET_KEY: "2026-12-05"\n  pms-secrets:rotation: "2026-01-01"\n`;
  const r = bumpDueKeepers(text, ["SECRET_KEY", "JWT_SIGNING_KEY"], 0, new Date("2026-12-05T10:00:00Z"));
  assert.deepEqual(r.due, ["SECRET_KEY", "JWT_SIGNING_KEY"]);
  assert.deepEqual(configOf(r.text)["pms-secrets:rotate"], {
    SECRET_KEY: "2026-12-05.2",
    JWT_SIGNING_KEY: "2026-12-05",
  });
  assert.match(r.text, /# keepers/);
  assert.equal(nextKeeper("2026-12-05.2", "2026-12-05"), "2026-12-05.3");
  assert.equal(nextKeeper("emergency-2026-12-05", "2026-12-05"), "2026-12-05", "a routine date ends the emergency");
  assert.match(
    setRotateKeeper("config:\n  a: 1\n", "K", "2026-01-01"),
    /^config:\n {2}a: 1\n {2}pms-secrets:rotate:\n {4}K: "2026-01-01"\n$/,
  );
});

test("a key is due by its newest keeper (its own or the global one); an emergency keeper's date counts", () => {
  const text = `config:\n  pms-secrets:generated:\n    SECRET_KEY: {}\n    JWT_SIGNING_KEY: {}\n  pms-secrets:rotate:\n    SECRET_KEY: emergency-2026-11-30\n  pms-secrets:rotation: "2026-01-01"\n`;
  const r = bumpDueKeepers(text, ["SECRET_KEY", "JWT_SIGNING_KEY"], 30, new Date("2026-12-05T00:00:00Z"));
  assert.deepEqual(r.due, ["JWT_SIGNING_KEY"]);
  assert.deepEqual(r.ages, { SECRET_KEY: 5, JWT_SIGNING_KEY: 338 });
});

test("keys the stack does not generate (or that are no key) are refused, each naming the variable and the fix", () => {
  assert.deepEqual(parseKeyList(undefined), ["SECRET_KEY"]);
  assert.deepEqual(parseKeyList(" SECRET_KEY,JWT_SIGNING_KEY\nSECRET_KEY "), ["SECRET_KEY", "JWT_SIGNING_KEY"]);
  assert.throws(
    () => bumpDueKeepers(PROD, ["SECRET_KEY", "DB_PASSWORD", "lower-case"], N, new Date()),
    (e: unknown) => {
      assert.ok(e instanceof ScheduledRotationError);
      assert.equal(e.problems.length, 2);
      assert.match(
        e.problems[0],
        /SCHEDULED_ROTATION_KEYS: DB_PASSWORD is not under pms-secrets:generated.*generated\.DB_PASSWORD/,
      );
      assert.match(e.problems[1], /"lower-case" is not an env key name/);
      return true;
    },
  );
});

test("the CLI as the workflow runs it: edits the file only when due, prints due/interval/title for $GITHUB_OUTPUT", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-sched-"));
  try {
    const file = path.join(dir, "Pulumi.prod.yaml");
    fs.writeFileSync(file, PROD);
    const notYet = daysAfter(ROTATION, N - 1)
      .toISOString()
      .slice(0, 10);
    const quiet = runScheduledRotation(
      parseCliArgs(["--stack-file", file, "--today", notYet], root, {
        SCHEDULED_ROTATION_KEYS: "SECRET_KEY",
        SCHEDULED_ROTATION_DAYS: String(N),
      }),
    );
    assert.equal(quiet, `due=\ninterval=${N}\ntitle=\n`);
    assert.equal(fs.readFileSync(file, "utf8"), PROD, "nothing due: file untouched");
    const day = daysAfter(ROTATION, N).toISOString().slice(0, 10);
    const out = runScheduledRotation(
      parseCliArgs(["--stack-file", file, "--today", day], root, { SCHEDULED_ROTATION_DAYS: String(N) }),
    );
    assert.equal(out, `due=SECRET_KEY\ninterval=${N}\ntitle=Rotate SECRET_KEY (scheduled, every ${N} days): ${day}\n`);
    assert.deepEqual(configOf(fs.readFileSync(file, "utf8"))["pms-secrets:rotate"], { SECRET_KEY: day });
    assert.throws(() => parseCliArgs(["--today", "tomorrow"], root), /unknown argument "--today" "tomorrow"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("N comes from the repository variable SCHEDULED_ROTATION_DAYS: 1 to the policy's maxKeeperAgeDays, anything else refused with the fix", () => {
  assert.equal(scheduledIntervalDays("30", N), 30);
  assert.equal(scheduledIntervalDays(` ${N}\n`, N), N);
  assert.equal(scheduledIntervalDays("1", N), 1);
  const refused = (value: string | undefined, re: RegExp): void => {
    assert.throws(
      () => scheduledIntervalDays(value, N),
      (e: unknown) =>
        e instanceof ScheduledRotationError &&
        e.problems.length === 1 &&
        re.test(e.problems[0]) &&
        e.problems[0].includes(`gh variable set SCHEDULED_ROTATION_DAYS --body ${N}`),
      `SCHEDULED_ROTATION_DAYS=${JSON.stringify(value)}`,
    );
  };
  refused(undefined, /^SCHEDULED_ROTATION_DAYS is not set: .* from 1 to 90 \(the keeper-age policy's maxKeeperAgeDays/);
  refused("", /^SCHEDULED_ROTATION_DAYS is not set/);
  for (const bad of ["0", "-5", "30.5", "1e2", "thirty", "30d", "0x10"]) {
    refused(bad, /not a whole number of days of at least 1\. Set it to a number from 1 to 90/);
  }
  refused(
    String(N + 1),
    new RegExp(
      `^SCHEDULED_ROTATION_DAYS is ${N + 1}, more than the keeper-age policy's maxKeeperAgeDays ${N} \\(policy/config\\.json\\)`,
    ),
  );
});

test("the CLI refuses to bump without a valid SCHEDULED_ROTATION_DAYS and leaves the stack file untouched", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-sched-"));
  try {
    const file = path.join(dir, "Pulumi.prod.yaml");
    fs.writeFileSync(file, PROD);
    const day = daysAfter(ROTATION, N + 10)
      .toISOString()
      .slice(0, 10);
    for (const env of [{}, { SCHEDULED_ROTATION_DAYS: "ninety" }, { SCHEDULED_ROTATION_DAYS: String(N * 2) }]) {
      assert.throws(
        () => runScheduledRotation(parseCliArgs(["--stack-file", file, "--today", day], root, env)),
        /scheduled rotation: nothing was changed:\n {2}- SCHEDULED_ROTATION_DAYS /,
      );
      assert.equal(fs.readFileSync(file, "utf8"), PROD);
    }
    // A shorter interval than the policy's: due earlier than the policy would warn.
    const early = daysAfter(ROTATION, 30).toISOString().slice(0, 10);
    const out = runScheduledRotation(
      parseCliArgs(["--stack-file", file, "--today", early], root, { SCHEDULED_ROTATION_DAYS: "30" }),
    );
    assert.equal(out, `due=SECRET_KEY\ninterval=30\ntitle=Rotate SECRET_KEY (scheduled, every 30 days): ${early}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
