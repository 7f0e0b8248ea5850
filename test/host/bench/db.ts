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
