/**
 * DB_PASSWORD rotated in PostgreSQL and on the hosts as one operation (issue 10).
 *
 * DB_PASSWORD is supplied (`secrets.DB_PASSWORD`, the default: the program only delivers it) or
 * generated (`generated.DB_PASSWORD: {}`, renewed by its keeper like any generated secret). When
 * it is generated, every rollout command carries `--rotate-db-password`: the host script compares
 * the delivered DB_PASSWORD with the one in the host's current env file and, when they differ,
 * changes the role's password in PostgreSQL before the env file moves (the host agent, agent/pms_agent,
 * rotate_db_password):
 *   - through the local superuser (`runuser -u postgres -- psql`) on the app host, so DB_HOST must
 *     be this host (checked here before any resource, and again on the host);
 *   - SQL on stdin with `log_statement`, `log_min_duration_statement` and `log_min_error_statement`
 *     off for that session, and only a SCRAM-SHA-256 verifier computed on the host is sent: the
 *     clear password is never in a statement, a command line or the server log;
 *   - the role's current verifier (pg_authid.rolpassword) is kept in the root-only run dir, so a
 *     failed rollout restores it exactly, together with the previous env file, without anyone
 *     knowing the old password;
 *   - the new password is proven by a TCP login to DB_HOST:DB_PORT as DB_USER (password in a
 *     root-only pgpass file) before the env file is installed and the services restart;
 *   - several hosts sharing the database (`generated.DB_PASSWORD.adminHost: <host name>`): that
 *     host runs PostgreSQL and its local superuser changes the password; it rolls first and
 *     alone (stack.ts), DB_HOST may be any address of it. Every other host gets
 *     `--db-follow <admin host>`: it never changes PostgreSQL, it proves that the delivered password
 *     logs in to DB_HOST:DB_PORT over TCP before its env moves (and fails untouched otherwise), so
 *     its rollback restores only its own env (with one role, keeping the new DB_PASSWORD, which is
 *     the only one PostgreSQL still accepts). Without adminHost, a later host of the run whose
 *     role's stored verifier already matches the new password skips the change;
 *   - "already changed" is read from the stored SCRAM verifier (recomputed with its salt and
 *     iterations), never from a login, and a login counts as proof only where a deliberately
 *     wrong password is refused on the same route (a `trust` line in pg_hba.conf is refused
 *     before any change);
 *
 * Alternating login roles (`generated.DB_PASSWORD.roles: [pms_app_a, pms_app_b]`, the
 * zero-downtime option): both roles are LOGIN members of the NOLOGIN role that owns the schema
 * (docs/RUNBOOK.md gives the SQL). The host then composes DB_USER itself (`--db-roles A,B`): a
 * rotation sets the password of the role the running app does NOT use and points DB_USER at it;
 * the role in use keeps its password, so the processes not yet restarted keep opening
 * connections and no request fails between the password change and the restart. The previous
 * role's password stays valid until the next rotation changes it (which flips back), except in
 * an emergency (`--emergency`): once the new env is proven, the previous role gets a random
 * password nobody knows and its sessions are ended. Why the host
 * picks: it alone knows which role its running app uses, so a re-run without a keeper change
 * composes the same file (nothing restarts) and no role name ever has to be typed per rotation.
 */
import { agentArgv } from "./agent-options";
import type { DbPasswordRotation } from "./config";

/**
 * The rollout arguments of `hostName` for the DB password mode; none when DB_PASSWORD is supplied.
 * With an admin host, every other host follows it (`--db-follow <admin host>`: never changes PostgreSQL).
 */
export function dbPasswordRolloutArgs(rotation: DbPasswordRotation, hostName?: string): string[] {
  if (!rotation.rotate) return [];
  const follows = rotation.adminHost !== undefined && hostName !== rotation.adminHost;
  return agentArgv(
    {
      "--rotate-db-password": true,
      "--db-roles": rotation.roles?.join(","),
      "--db-follow": follows ? rotation.adminHost : undefined,
    },
    { fragment: true },
  );
}
