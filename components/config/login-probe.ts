/**
 * `app.loginProbe`: the old guide's "tested login", done by the host after the restart. The
 * rollout logs in to the app's login page as a dedicated account, the way a browser does (GET the
 * page for its CSRF cookie, POST the form, then GET a page that needs the session), so a rotation
 * that breaks sessions, the auth tables or the login view itself is rolled back like a failed
 * health URL.
 *
 * The account's password is never in the stack: it lives in a root-only file on each host
 * (`passwordFile`, like the env file itself), which the rollout refuses to use unless it is a
 * regular root-owned file that no one else can read or swap. It never reaches a command line.
 */
import type { Problems } from "./problems";
import type { HealthSettings } from "./health";
import { isHttpUrl } from "./health";
import { absolutePath, isObject, scalar, unknownKeys } from "./read";

export interface LoginProbe {
  /** The login page (Django's LoginView): GET gives the CSRF cookie, POST logs in (3xx). */
  url: string;
  /** The probe account's username (a dedicated account without staff rights). */
  username: string;
  /** Root-only file on each host holding the account's password (one line). */
  passwordFile: string;
  /** A page that needs the session: must answer 2xx after the login. */
  checkUrl: string;
}

export const LOGIN_PROBE_KEYS = ["url", "username", "passwordFile", "checkUrl"];
const EXAMPLE =
  "e.g. {url: http://127.0.0.1:8000/accounts/login/, username: rollout-probe, passwordFile: /etc/pms-secrets/login-probe, checkUrl: http://127.0.0.1:8000/me/}";

function probeUrl(problems: Problems, key: string, value: unknown, health: HealthSettings): string {
  const url = scalar(value);
  if (value === undefined) {
    problems.add(key, "is missing", EXAMPLE);
  } else if (typeof value !== "string" || !isHttpUrl(url)) {
    problems.add(
      key,
      `${JSON.stringify(value)} is not an http(s) URL without credentials`,
      "use a URL the host itself can reach, like the health URLs",
    );
  } else if (url.startsWith("https:") !== health.healthUrls.some((u) => u.startsWith("https:"))) {
    problems.add(
      key,
      `${url} does not use the scheme of the health URLs`,
      "the probe sends the health check's Host header and certificate settings: use the same scheme as app.healthUrl(s)",
    );
  }
  return url;
}

/** Parses `app.loginProbe`; it needs a health URL (it runs after them, with their Host and TLS settings). */
export function parseLoginProbe(problems: Problems, value: unknown, health: HealthSettings): LoginProbe | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) {
    problems.add("app.loginProbe", "must be an object", EXAMPLE);
    return undefined;
  }
  unknownKeys(problems, "app.loginProbe", value, LOGIN_PROBE_KEYS);
  if (health.healthUrls.length === 0) {
    problems.add(
      "app.loginProbe",
      "is set without a health URL",
      "set app.healthUrl(s) too: the probe runs once they answer, with the same Host header and certificate settings",
    );
  }
  const username = scalar(value.username);
  if (value.username === undefined || typeof value.username !== "string" || !/^[\w.@+-]{1,150}$/.test(username)) {
    problems.add(
      "app.loginProbe.username",
      value.username === undefined ? "is missing" : `${JSON.stringify(value.username)} is not a Django username`,
      "the username of a dedicated account without staff rights (letters, digits and @.+-_, up to 150)",
    );
  }
  let passwordFile: string | undefined;
  if (value.passwordFile === undefined) {
    problems.add(
      "app.loginProbe.passwordFile",
      "is missing",
      "a root-only file on each host holding the probe account's password, e.g. /etc/pms-secrets/login-probe (see the runbook's Host setup)",
    );
  } else {
    passwordFile = absolutePath(
      problems,
      "app.loginProbe.passwordFile",
      value.passwordFile,
      "/etc/pms-secrets/login-probe",
    );
  }
  return {
    url: probeUrl(problems, "app.loginProbe.url", value.url, health),
    username,
    passwordFile: passwordFile ?? "",
    checkUrl: probeUrl(problems, "app.loginProbe.checkUrl", value.checkUrl, health),
  };
}
