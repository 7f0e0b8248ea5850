/**
 * Issue 19 (d): the worst case of one host's rollout, computed from config (rollout-time.ts) the
 * same way the host script computes the worker's budgets from its arguments, and a config whose
 * worst case exceeds the rollout command's resource timeout refused before any resource.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { AppSpec } from "../components/config";
import * as fs from "node:fs";
import * as path from "node:path";
import { rolloutCommand } from "../components/host-rollout";
import { AGENT_DIR } from "./agent-run";
import { HOST_BOUNDS, ROLLOUT_TIMEOUT_SECONDS, rolloutWorstCase } from "../components/rollout-time";
import { baseConfig } from "./fixtures";
import { assertProblem, stackProblems } from "./config-check";

const APP: AppSpec = {
  dir: "/srv/pms-backend",
  envFile: "/srv/pms-backend/.env.production",
  services: ["pms-backend", "celery-pms"],
  healthUrls: ["http://127.0.0.1:8000/health/"],
  healthInsecure: false,
  checkCommand: "python3 manage.py check --deploy",
  unmanagedKeys: "refuse",
  backupGenerations: 3,
  stableSeconds: 5,
  healthTimeoutSeconds: 30,
};
const SSH = { timeoutSeconds: 10, attempts: 3 };

/** The agent's budget.forward, budget.rollback and budget.worst_case for the program's own command line. */
function scriptBudgets(app: AppSpec, extra: string[] = []): { forward: number; rollback: number; host: number } {
  const cmd = rolloutCommand({ name: "web1", address: "10.0.0.5", port: 22, user: "root" }, app, [], extra);
  const args = cmd.slice("/bin/bash -s -- ".length);
  const code =
    `import sys; sys.path.insert(0, ${JSON.stringify(AGENT_DIR)}); ` +
    "from pms_agent import budget, options; " +
    "o = options.parse_args(sys.argv[1:]); print(budget.forward(o), budget.rollback(o), budget.worst_case(o))";
  // The login shell's word splitting of the command line, then the agent's own parser.
  const r = spawnSync(
    "/bin/bash",
    ["-c", `eval "set -- ${args.replace(/"/g, '\\"')}"; exec python3 -I -c "$0" "$@"`, code],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const [forward, rollback, host] = r.stdout.trim().split(" ").map(Number);
  return { forward, rollback, host };
}

test("the agent's bounds are the ones rollout-time.ts adds up", () => {
  const constants = fs.readFileSync(path.join(AGENT_DIR, "pms_agent", "constants.py"), "utf8");
  for (const [name, value] of Object.entries(HOST_BOUNDS)) {
    assert.match(constants, new RegExp(`^${name} = ${value}$`, "m"), name);
  }
});

test("the worst case from config equals the agent's budgets for the same command line", () => {
  const login = {
    url: "http://127.0.0.1:8000/accounts/login/",
    username: "rollout-probe",
    passwordFile: "/etc/pms-secrets/login-probe",
    checkUrl: "http://127.0.0.1:8000/me/",
  };
  const cases: [AppSpec, boolean][] = [
    [APP, false],
    [APP, true],
    [{ ...APP, checkCommand: undefined, healthUrls: [], stableSeconds: 1 }, false],
    [{ ...APP, services: ["a", "b", "c"], healthUrls: ["http://127.0.0.1/a", "http://127.0.0.1/b"] }, true],
    [{ ...APP, loginProbe: login, healthTimeoutSeconds: 120, stableSeconds: 30 }, true],
  ];
  for (const [app, db] of cases) {
    const ours = rolloutWorstCase({ app, rotateDbPassword: db, ssh: SSH });
    const script = scriptBudgets(app, db ? ["--rotate-db-password"] : []);
    assert.deepEqual({ forward: ours.forward, rollback: ours.rollback, host: ours.host }, script, JSON.stringify(app));
    assert.equal(ours.total, ours.host + 30);
  }
});

test("the documented figures: 1310 s for the shipped shape, 1635 s with the DB rotation and login probe, both under 30 min", () => {
  const plain = rolloutWorstCase({ app: APP, rotateDbPassword: false, ssh: SSH });
  assert.deepEqual([plain.forward, plain.rollback, plain.host], [810, 395, 1310]);
  const all = rolloutWorstCase({
    app: { ...APP, loginProbe: { url: "u", username: "p", passwordFile: "/f", checkUrl: "c" } },
    rotateDbPassword: true,
    ssh: SSH,
  });
  assert.equal(all.host, 1635);
  assert.ok(all.total <= ROLLOUT_TIMEOUT_SECONDS);
});

function problemsOf(config: Record<string, unknown>): readonly string[] {
  return stackProblems(config, "dev");
}

test("a config whose worst case exceeds the resource timeout is refused, naming the keys", () => {
  const base = baseConfig("dev");
  const { healthUrl: _single, ...app } = base.app as Record<string, unknown>;
  // Each value is allowed on its own; together one host could take ~75 min.
  const long = {
    ...base,
    app: {
      ...app,
      services: ["pms-backend", "celery-pms", "celery-beat"],
      healthUrls: ["http://127.0.0.1:8000/health/", "http://127.0.0.1:8000/ready/"],
      healthTimeoutSeconds: 600,
      stableSeconds: 300,
    },
  };
  const problems = problemsOf(long);
  const line = assertProblem(problems, "app.healthTimeoutSeconds", /can take \d+ s at worst/);
  for (const key of [
    "app.services (3)",
    "app.healthUrls (2)",
    "app.healthTimeoutSeconds (600)",
    "app.stableSeconds (300)",
    "app.checkCommand",
    "sshTimeoutSeconds",
  ]) {
    assert.ok(line.includes(key), `${key} in: ${line}`);
  }
  assert.match(line, /more than the 1800 s/);
  // The shipped shape and a long-but-fitting one pass.
  assert.deepEqual(problemsOf(base), []);
  assert.deepEqual(
    problemsOf({ ...base, app: { ...app, healthUrls: [_single], healthTimeoutSeconds: 120, stableSeconds: 30 } }),
    [],
  );
});
