/**
 * The health part of `app`: which URLs the host checks after a restart, with which Host header
 * (Django answers 400 to a Host that is not in ALLOWED_HOSTS), and how https is verified.
 */
import type { Problems } from "./problems";
import { absolutePath, ConfigObject, flag, scalar } from "./read";

export interface HealthSettings {
  /** URLs checked from the host itself after the first service restarts; each must answer 2xx. */
  healthUrls: string[];
  /** Host header of the health requests (default: the first ALLOWED_HOSTS name); set only with a URL. */
  healthHost?: string;
  /** CA bundle on the host for https health URLs. */
  healthCaFile?: string;
  /** Skip certificate checks of https health URLs (explicit; refused on production). */
  healthInsecure: boolean;
}

export interface HealthRules {
  production: boolean;
  because: string;
  /** ALLOWED_HOSTS entries (empty when unknown): the default Host header. */
  allowedHosts: readonly string[];
}

export function isHttpUrl(u: string): boolean {
  try {
    const parsed = new URL(u);
    return (
      (parsed.protocol === "http:" || parsed.protocol === "https:") && !/[\s'"\\]/.test(u) && parsed.username === ""
    );
  } catch {
    return false;
  }
}

function parseHealthUrls(problems: Problems, app: ConfigObject): string[] {
  if (app.healthUrl !== undefined && app.healthUrls !== undefined) {
    problems.add(
      "app.healthUrls",
      "is set together with app.healthUrl",
      "list every URL in app.healthUrls and remove app.healthUrl",
    );
    return [];
  }
  const [key, list] =
    app.healthUrls !== undefined
      ? ["app.healthUrls", app.healthUrls]
      : ["app.healthUrl", app.healthUrl === undefined ? [] : [app.healthUrl]];
  if (!Array.isArray(list)) {
    problems.add(
      key,
      "must be a list of http(s) URLs",
      "e.g. `pulumi config set --path 'app.healthUrls[0]' http://127.0.0.1:8000/health/`",
    );
    return [];
  }
  const urls = list.map(scalar);
  urls.forEach((u, i) => {
    if (!isHttpUrl(u)) {
      problems.add(
        key === "app.healthUrl" ? key : `${key}[${i}]`,
        `${JSON.stringify(u)} is not an http(s) URL without credentials`,
        "use a URL the host itself can reach, e.g. http://127.0.0.1:8000/health/",
      );
    }
  });
  return urls;
}

/** Django's host validation (`django.http.request.validate_host`) for one Host value, port dropped. */
function djangoAllows(allowedHosts: readonly string[], host: string): boolean {
  const name = host.replace(/:\d+$/, "").replace(/\.$/, "").toLowerCase();
  return allowedHosts.some((pattern) => {
    const p = pattern.toLowerCase();
    return p === "*" || p === name || (p.startsWith(".") && (name.endsWith(p) || name === p.slice(1)));
  });
}

function parseHealthHost(problems: Problems, rules: HealthRules, value: unknown): string | undefined {
  if (value === undefined) {
    const first = rules.allowedHosts[0];
    return first === undefined || first === "*" ? undefined : first.replace(/^\./, "");
  }
  const host = scalar(value);
  const fix = "set the public name the site answers to, one of env.ALLOWED_HOSTS (default: the first one)";
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host)) {
    problems.add("app.healthHost", `${JSON.stringify(host)} is not a host name`, fix);
  } else if (rules.allowedHosts.length > 0 && !djangoAllows(rules.allowedHosts, host)) {
    problems.add(
      "app.healthHost",
      `${host} is not in env.ALLOWED_HOSTS, so Django would answer 400 and every rollout would roll back`,
      fix,
    );
  }
  return host;
}

function parseHealthTls(
  problems: Problems,
  rules: HealthRules,
  app: ConfigObject,
  urls: readonly string[],
): Pick<HealthSettings, "healthCaFile" | "healthInsecure"> {
  const healthCaFile =
    app.healthCaFile === undefined
      ? undefined
      : absolutePath(problems, "app.healthCaFile", app.healthCaFile, "/etc/ssl/certs/ca-certificates.crt");
  const healthInsecure = flag(problems, "app.healthInsecure", app.healthInsecure, false);
  const https = urls.some((u) => u.startsWith("https:"));
  if ((healthCaFile !== undefined || healthInsecure) && !https) {
    problems.add(
      healthCaFile !== undefined ? "app.healthCaFile" : "app.healthInsecure",
      "is set but no health URL is https",
      "remove it, or use an https health URL",
    );
  } else if (healthCaFile !== undefined && healthInsecure) {
    problems.add(
      "app.healthInsecure",
      "is set together with app.healthCaFile",
      "keep one: the CA file checks the certificate, insecure does not",
    );
  } else if (healthInsecure && rules.production) {
    // Unverified TLS on production would let whoever answers on that address pass the health
    // check (and receive the login probe's password): refused, not only warned.
    problems.add(
      "app.healthInsecure",
      `is on for ${rules.because}: the health check (and the login probe) would not verify the server certificate`,
      "give the CA that signed the app's certificate with `pulumi config set --path 'app.healthCaFile' /etc/ssl/certs/<ca>.pem` and `pulumi config rm --path 'app.healthInsecure'`, or check a plain http URL on the host's loopback (http://127.0.0.1:8000/health/)",
    );
  }
  return { healthCaFile, healthInsecure };
}

/** Parses app.healthUrl(s), app.healthHost, app.healthCaFile and app.healthInsecure. */
export function parseHealth(problems: Problems, app: ConfigObject, rules: HealthRules): HealthSettings {
  const healthUrls = parseHealthUrls(problems, app);
  if (healthUrls.length === 0 && app.healthHost !== undefined) {
    problems.add("app.healthHost", "is set without a health URL", "set app.healthUrl(s), or remove app.healthHost");
  }
  return {
    healthUrls,
    healthHost: healthUrls.length > 0 ? parseHealthHost(problems, rules, app.healthHost) : undefined,
    ...parseHealthTls(problems, rules, app, healthUrls),
  };
}
