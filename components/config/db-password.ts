/**
 * `generated.DB_PASSWORD` as a rotation (roles, adminHost) and the env checks it needs: a generated
 * DB_PASSWORD is changed in PostgreSQL by the rollout, so DB_HOST and DB_USER must allow it. What
 * the hosts do with it: db-password-rotation.ts.
 */
import type { GeneratedSecretSpec } from "./generated";
import type { Problems } from "./problems";
import { isObject, scalar } from "./read";

export const DB_PASSWORD = "DB_PASSWORD";
/** DB_HOST values that name the app host itself (the local superuser can change the role). */
export const LOCAL_DB_HOSTS: readonly string[] = ["127.0.0.1", "localhost", "::1"];
/** Role names the script accepts unquoted in ALTER ROLE (PostgreSQL folds case otherwise). */
const PLAIN_ROLE = /^[a-z_][a-z0-9_]*$/;

/** PostgreSQL's longest identifier (NAMEDATALEN - 1). */
const MAX_ROLE_LENGTH = 63;

export interface DbPasswordRotation {
  /** DB_PASSWORD is generated: a changed value is set in PostgreSQL by the rollout. */
  rotate: boolean;
  /** The two alternating login roles (the host writes DB_USER); absent: the single env.DB_USER. */
  roles?: readonly [string, string];
  /** The host whose local PostgreSQL every host uses (shared database); the others follow it. */
  adminHost?: string;
}

export interface DbPasswordInput {
  generated: readonly GeneratedSecretSpec[];
  /** The raw `generated` map (for `generated.DB_PASSWORD.roles`). */
  generatedRaw?: unknown;
  /** The raw `env` map (parseEnv reports its own problems). */
  env: unknown;
  /** The names of `hosts` (for `generated.DB_PASSWORD.adminHost`). */
  hostNames?: readonly string[];
}

const ROLES_AT = "generated.DB_PASSWORD.roles";
const ADMIN_AT = "generated.DB_PASSWORD.adminHost";
const ROLES_EXAMPLE =
  "`pulumi config set --path 'generated.DB_PASSWORD.roles[0]' pms_app_a` and `... roles[1]' pms_app_b` (create both first: docs/RUNBOOK.md, \"Alternating login roles\")";

function rolesAsked(generatedRaw: unknown): boolean {
  return isObject(generatedRaw) && isObject(generatedRaw.DB_PASSWORD) && generatedRaw.DB_PASSWORD.roles !== undefined;
}

/**
 * The env keys the hosts write themselves, so the config must not require them: DB_USER when
 * `generated.DB_PASSWORD.roles` is set (even a wrong one, whose own problem is listed instead).
 */
export function hostComposedEnvKeys(generatedRaw: unknown): string[] {
  return rolesAsked(generatedRaw) ? ["DB_USER"] : [];
}

/** `generated.DB_PASSWORD.roles`: undefined when absent, else two distinct plain role names (or problems). */
function parseRoles(problems: Problems, raw: unknown, user: string | undefined): [string, string] | undefined {
  if (!rolesAsked(raw) || !isObject(raw) || !isObject(raw.DB_PASSWORD)) return undefined;
  const spec = raw.DB_PASSWORD;
  if (!Array.isArray(spec.roles) || spec.roles.length !== 2) {
    problems.add(
      ROLES_AT,
      `must be a list of exactly two role names, not ${scalar(spec.roles)}`,
      `set ${ROLES_EXAMPLE}`,
    );
    return undefined;
  }
  const names = spec.roles.map(scalar);
  let ok = true;
  names.forEach((name, i) => {
    const why = !PLAIN_ROLE.test(name)
      ? "is not a plain lower-case PostgreSQL role name (letters, digits, _; not starting with a digit)"
      : name.length > MAX_ROLE_LENGTH
        ? `is longer than ${MAX_ROLE_LENGTH} characters (PostgreSQL would cut it)`
        : name === "postgres" || name.startsWith("pg_")
          ? "is the superuser or a reserved pg_ name, never an app login"
          : undefined;
    if (why) {
      ok = false;
      problems.add(
        `${ROLES_AT}[${i}]`,
        `${JSON.stringify(name)} ${why}`,
        `use a role made for the app, e.g. ${ROLES_EXAMPLE}`,
      );
    }
  });
  if (names[0] === names[1]) {
    ok = false;
    problems.add(
      ROLES_AT,
      `names ${JSON.stringify(names[0])} twice; alternating needs two different roles`,
      `set two roles, e.g. ${ROLES_EXAMPLE}`,
    );
  }
  if (user !== undefined) {
    problems.add(
      "env.DB_USER",
      `is set (${JSON.stringify(user)}), but with ${ROLES_AT} each host writes DB_USER itself (the role the rotation moved to)`,
      "remove it: `pulumi config rm --path 'env.DB_USER'`",
    );
  }
  return ok ? [names[0], names[1]] : undefined;
}

/** `generated.DB_PASSWORD.adminHost`: undefined when absent, else the name of one of `hosts` (or a problem). */
function parseAdminHost(problems: Problems, raw: unknown, hostNames: readonly string[]): string | undefined {
  if (!isObject(raw) || !isObject(raw.DB_PASSWORD) || raw.DB_PASSWORD.adminHost === undefined) return undefined;
  const value = raw.DB_PASSWORD.adminHost;
  const name = typeof value === "string" ? value : undefined;
  const known = hostNames.length > 0 ? hostNames.join(", ") : "none yet";
  if (name === undefined || name === "") {
    problems.add(
      ADMIN_AT,
      `must be the name of the host that runs PostgreSQL, not ${scalar(value)}`,
      `\`pulumi config set --path '${ADMIN_AT}' <name>\` with one of hosts[].name (${known})`,
    );
    return undefined;
  }
  if (!hostNames.includes(name)) {
    problems.add(
      ADMIN_AT,
      `${JSON.stringify(name)} is not one of hosts[].name; the admin host must be a host of this stack (it runs PostgreSQL and the app)`,
      `set it to one of ${known}, or add that host to hosts`,
    );
    return undefined;
  }
  return name;
}

/** Whether DB_PASSWORD is rotated with PostgreSQL; a generated one needs a local DB and a plain role. */
export function parseDbPasswordRotation(problems: Problems, input: DbPasswordInput): DbPasswordRotation {
  const rotate = input.generated.some((g) => g.key === DB_PASSWORD);
  if (!rotate) return { rotate };
  const env = isObject(input.env) ? input.env : {};
  const host = env.DB_HOST === undefined ? undefined : scalar(env.DB_HOST);
  const user = env.DB_USER === undefined ? undefined : scalar(env.DB_USER);
  const roles = parseRoles(problems, input.generatedRaw, user);
  const hostNames = input.hostNames ?? [];
  const adminHost = parseAdminHost(problems, input.generatedRaw, hostNames);
  const adminAsked =
    isObject(input.generatedRaw) &&
    isObject(input.generatedRaw.DB_PASSWORD) &&
    input.generatedRaw.DB_PASSWORD.adminHost !== undefined;
  const supplied =
    "or remove generated.DB_PASSWORD and supply it with `pulumi config set --secret --path 'secrets.DB_PASSWORD'` (it prompts), changing it in PostgreSQL yourself";
  if (adminAsked) {
    // The other hosts reach the admin host's PostgreSQL over TCP: a loopback DB_HOST is their own.
    if (host !== undefined && LOCAL_DB_HOSTS.includes(host) && hostNames.some((n) => n !== adminHost)) {
      problems.add(
        "env.DB_HOST",
        `${JSON.stringify(host)} is each host's own loopback, but with ${ADMIN_AT} the other hosts use the database of ${adminHost ?? "the admin host"}`,
        `set env.DB_HOST to an address of ${adminHost ?? "the admin host"} that every host reaches (PostgreSQL listening there, pg_hba.conf allowing the hosts with scram-sha-256)`,
      );
    }
  } else if (host !== undefined && !LOCAL_DB_HOSTS.includes(host)) {
    problems.add(
      "env.DB_HOST",
      `${JSON.stringify(host)} is not the app host, but generated.DB_PASSWORD is changed in PostgreSQL through the app host's local postgres superuser`,
      `set env.DB_HOST to one of ${LOCAL_DB_HOSTS.join(", ")} (the database runs on the app host), or name the host that runs PostgreSQL for all hosts in \`pulumi config set --path '${ADMIN_AT}' <host name>\`, ${supplied}`,
    );
  }
  if (!rolesAsked(input.generatedRaw) && user !== undefined && !PLAIN_ROLE.test(user)) {
    problems.add(
      "env.DB_USER",
      `${JSON.stringify(user)} is not a plain lower-case PostgreSQL role name (letters, digits, _), which generated.DB_PASSWORD needs`,
      `use such a role for the app, ${supplied}`,
    );
  }
  return { rotate, ...(roles ? { roles } : {}), ...(adminHost === undefined ? {} : { adminHost }) };
}
