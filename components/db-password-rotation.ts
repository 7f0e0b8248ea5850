/**
 * DB_PASSWORD rotated in PostgreSQL and on the hosts as one operation (issue 10).
 *
 * DB_PASSWORD is supplied (`secrets.DB_PASSWORD`, the default: the program only delivers it) or
 * generated (`generated.DB_PASSWORD: {}`, renewed by its keeper like any generated secret). When
 * it is generated, every rollout command carries `--rotate-db-password`: the host script compares
 * the delivered DB_PASSWORD with the one in the host's current env file and, when they differ,
 * changes the role's password in PostgreSQL before the env file moves (rollout.sh,
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
 *   - several hosts sharing the database: the first host of the run changes it; each later host
 *     finds that the new password already logs in and skips the change.
 */
import type { GeneratedSecretSpec } from "./config/generated";
import type { Problems } from "./config/problems";
import { isObject, scalar } from "./config/read";

export const DB_PASSWORD = "DB_PASSWORD";
/** DB_HOST values that name the app host itself (the local superuser can change the role). */
export const LOCAL_DB_HOSTS: readonly string[] = ["127.0.0.1", "localhost", "::1"];
/** Role names the script accepts unquoted in ALTER ROLE (PostgreSQL folds case otherwise). */
const PLAIN_ROLE = /^[a-z_][a-z0-9_]*$/;

export interface DbPasswordRotation {
  /** DB_PASSWORD is generated: a changed value is set in PostgreSQL by the rollout. */
  rotate: boolean;
}

export interface DbPasswordInput {
  generated: readonly GeneratedSecretSpec[];
  /** The raw `env` map (parseEnv reports its own problems). */
  env: unknown;
}

/** Whether DB_PASSWORD is rotated with PostgreSQL; a generated one needs a local DB and a plain role. */
export function parseDbPasswordRotation(problems: Problems, input: DbPasswordInput): DbPasswordRotation {
  const rotate = input.generated.some((g) => g.key === DB_PASSWORD);
  if (!rotate) return { rotate };
  const env = isObject(input.env) ? input.env : {};
  const host = env.DB_HOST === undefined ? undefined : scalar(env.DB_HOST);
  const user = env.DB_USER === undefined ? undefined : scalar(env.DB_USER);
  const supplied =
    "or remove generated.DB_PASSWORD and supply it with `pulumi config set --secret --path 'secrets.DB_PASSWORD'` (it prompts), changing it in PostgreSQL yourself";
  if (host !== undefined && !LOCAL_DB_HOSTS.includes(host)) {
    problems.add(
      "env.DB_HOST",
      `${JSON.stringify(host)} is not the app host, but generated.DB_PASSWORD is changed in PostgreSQL through the app host's local postgres superuser`,
      `set env.DB_HOST to one of ${LOCAL_DB_HOSTS.join(", ")} (the database runs on the app host), ${supplied}`,
    );
  }
  if (user !== undefined && !PLAIN_ROLE.test(user)) {
    problems.add(
      "env.DB_USER",
      `${JSON.stringify(user)} is not a plain lower-case PostgreSQL role name (letters, digits, _), which generated.DB_PASSWORD needs`,
      `use such a role for the app, ${supplied}`,
    );
  }
  return { rotate };
}

/** The rollout arguments for the DB password mode; none when DB_PASSWORD is supplied. */
export function dbPasswordRolloutArgs(rotation: DbPasswordRotation): string[] {
  return rotation.rotate ? ["--rotate-db-password"] : [];
}
