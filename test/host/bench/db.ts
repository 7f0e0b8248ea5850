/**
 * The DB_PASSWORD rows of `npm run bench` (issue 10): a rotation of a generated DB_PASSWORD
 * through the real `pulumi up`, single role vs alternating login roles, on one socket-activated
 * host under the same constant load on /health/ (a SELECT 1 on a new connection per request).
 * The roles are made with docs/RUNBOOK.md's own SQL, as the host test does.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fleetConfig } from "../scenario";
import { TEST_DB, TestFleet, TestHost } from "../testhost";

const REPO = path.join(__dirname, "..", "..", "..");
export const DB_ROLES = ["pms_app_a", "pms_app_b"] as const;

/**
 * The `sql` blocks of docs/RUNBOOK.md's "Alternating login roles" paragraph, in order: the one
 * that creates the roles, then the one that retires the owner's login.
 */
export function runbookRolesSql(): [string, string] {
  const text = fs.readFileSync(path.join(REPO, "docs", "RUNBOOK.md"), "utf8");
  const at = text.indexOf("**Alternating login roles**");
  assert.ok(at >= 0, "docs/RUNBOOK.md has the Alternating login roles paragraph");
  const end = text.indexOf("\n---", at);
  const section = text.slice(at, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.equal(
    blocks.length,
    2,
    "the runbook gives the SQL to create the roles and the SQL to retire the owner's login",
  );
  return [blocks[0], blocks[1]];
}

/** The password of `role` as PostgreSQL on `host` stores it (its SCRAM verifier; "" for none). */
export async function roleVerifier(fleet: TestFleet, host: TestHost, role: string): Promise<string> {
  const r = await fleet.exec(
    host,
    `runuser -u postgres -- psql -X -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'"`,
  );
  if (r.code !== 0) throw new Error(`reading ${role}'s verifier on ${host.name} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * 0 when `password` logs in as `user` from `host` to PostgreSQL at `dbHost` over TCP. The password
 * goes through stdin into a root-only pgpass file, never a command line.
 */
export async function loginCode(
  fleet: TestFleet,
  host: TestHost,
  password: string,
  user: string = TEST_DB.user,
  dbHost: string = TEST_DB.host,
): Promise<number> {
  const r = await fleet.exec(
    host,
    `set -e; f=$(mktemp); chmod 600 "$f"; { printf '*:*:*:*:'; cat; } >"$f"; ` +
      `env -u PGPASSWORD PGPASSFILE="$f" PGCONNECT_TIMEOUT=5 psql -X -w -At -h ${dbHost} -p ${TEST_DB.port} ` +
      `-U ${user} -d ${TEST_DB.name} -c 'SELECT 1' >/dev/null 2>&1; rc=$?; rm -f "$f"; exit $rc`,
    { stdin: `${password}\n` },
  );
  return r.code;
}

/** SQL on stdin to the database superuser on `host`, as an operator runs the runbook's. */
export async function superuserSql(fleet: TestFleet, host: TestHost, sql: string): Promise<void> {
  const r = await fleet.exec(host, `runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d ${TEST_DB.name}`, {
    stdin: sql,
  });
  if (r.code !== 0) throw new Error(`psql on ${host.name} failed: ${r.stderr}`);
}

/** fleetConfig with DB_PASSWORD generated (single role: env.DB_USER; else the two roles) and its keeper. */
export function dbRotationConfig(
  fleet: TestFleet,
  host: TestHost,
  opts: { roles: boolean; keeper: string; stableSeconds: number },
): Record<string, unknown> {
  const base = fleetConfig(fleet, [host], { stableSeconds: opts.stableSeconds });
  const secrets = { ...(base.secrets as Record<string, string>) };
  delete secrets.DB_PASSWORD;
  const env = { ...(base.env as Record<string, unknown>) };
  if (opts.roles) delete env.DB_USER;
  return {
    ...base,
    secrets,
    env,
    generated: { ...(base.generated as object), DB_PASSWORD: opts.roles ? { roles: [...DB_ROLES] } : {} },
    rotate: { DB_PASSWORD: opts.keeper },
  };
}
