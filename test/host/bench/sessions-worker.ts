/**
 * The session clients of sessions.ts, inside the balancer's namespace. Each client:
 *   1. GET /accounts/login/ (the form's csrfmiddlewaretoken and the cookies it sets),
 *   2. POST /accounts/login/ with the form (302 = logged in; 403 = CSRF refused),
 *   3. requestsPerLogin times: GET /session/ (200 as the user, with a fresh CSRF token; 401 =
 *      the session was rejected) and POST /session/post/ with that token in X-CSRFToken (200;
 *      401 rejected session; 403 CSRF refused),
 * then starts over with no cookies. Prints "ready" after the first login of every client, and one
 * JSON line (SessionResult) once stdin closes and every client finished its current request.
 */
import * as http from "node:http";
import type { SessionResult, SessionSpec } from "./sessions";

const TIMEOUT_MS = 20000;

interface Answer {
  status: number;
  body: string;
  setCookies: string[];
}

function request(
  spec: SessionSpec,
  agent: http.Agent,
  method: string,
  path: string,
  cookies: Map<string, string>,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const req = http.request(
      {
        host: "127.0.0.1",
        port: spec.port,
        method,
        path,
        agent,
        timeout: TIMEOUT_MS,
        headers: {
          Host: spec.hostHeader,
          ...(cookie ? { Cookie: cookie } : {}),
          ...(body !== undefined
            ? { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) }
            : {}),
          ...headers,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          const set = res.headers["set-cookie"] ?? [];
          resolve({ status: res.statusCode ?? 0, body: text, setCookies: set });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

/** Applies Set-Cookie headers as a browser does (a past expiry or Max-Age=0 deletes). */
function applyCookies(cookies: Map<string, string>, setCookies: string[]): void {
  for (const line of setCookies) {
    const [pair, ...attrs] = line.split(";");
    const i = pair.indexOf("=");
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    const expired = attrs.some((a) => {
      const [k, v = ""] = a.trim().split("=");
      if (k.toLowerCase() === "max-age") return Number(v) <= 0;
      if (k.toLowerCase() === "expires") return Date.parse(v) < Date.now();
      return false;
    });
    if (expired || value === '""' || value === "") cookies.delete(name);
    else cookies.set(name, value);
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "{}") as SessionSpec;
  const result: SessionResult = {
    logins: 0,
    ok: 0,
    rejectedSessions: 0,
    csrfFailures: 0,
    failed: 0,
    errors: {},
    hosts: {},
    crossHostSessions: 0,
  };
  let stopping = false;
  process.stdin.on("end", () => (stopping = true));
  process.stdin.on("close", () => (stopping = true));
  process.stdin.resume();
  const fail = (kind: string): void => {
    result.failed++;
    result.errors[kind] = (result.errors[kind] ?? 0) + 1;
  };
  const rejected = (): void => {
    result.rejectedSessions++;
    result.lastRejectionMs = Date.now();
    result.firstRejectionMs ??= result.lastRejectionMs;
  };
  const csrf = (): void => {
    result.csrfFailures++;
    result.lastRejectionMs = Date.now();
    result.firstRejectionMs ??= result.lastRejectionMs;
  };
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, spec.pauseMs));
  let loggedIn = 0;

  async function client(): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let first = true;
    const crossed = new Set<string>();
    while (!stopping) {
      const cookies = new Map<string, string>();
      try {
        const form = await request(spec, agent, "GET", "/accounts/login/", cookies);
        applyCookies(cookies, form.setCookies);
        const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(form.body)?.[1];
        if (form.status !== 200 || !token) {
          fail(`login form http ${form.status}`);
          await pause();
          continue;
        }
        const body = new URLSearchParams({
          username: spec.username,
          password: spec.password,
          csrfmiddlewaretoken: token,
        }).toString();
        const login = await request(spec, agent, "POST", "/accounts/login/", cookies, body);
        applyCookies(cookies, login.setCookies);
        if (login.status === 403) {
          csrf();
          continue;
        }
        if (login.status !== 302) {
          fail(`login http ${login.status}`);
          continue;
        }
        result.logins++;
        if (first) {
          first = false;
          if (++loggedIn === spec.clients) process.stdout.write("ready\n");
        }
        const hosts = new Set<string>();
        for (let i = 0; i < spec.requestsPerLogin && !stopping; i++) {
          await pause();
          const page = await request(spec, agent, "GET", "/session/", cookies);
          applyCookies(cookies, page.setCookies);
          let csrfToken = "";
          if (page.status === 200) {
            const json = JSON.parse(page.body) as { host: string; csrfToken: string };
            result.ok++;
            hosts.add(json.host);
            result.hosts[json.host] = (result.hosts[json.host] ?? 0) + 1;
            csrfToken = json.csrfToken;
          } else if (page.status === 401) {
            rejected();
            break;
          } else {
            fail(`session http ${page.status}`);
            break;
          }
          await pause();
          const post = await request(spec, agent, "POST", "/session/post/", cookies, "note=1", {
            "X-CSRFToken": csrfToken,
          });
          applyCookies(cookies, post.setCookies);
          if (post.status === 200) {
            const json = JSON.parse(post.body) as { host: string };
            result.ok++;
            hosts.add(json.host);
            result.hosts[json.host] = (result.hosts[json.host] ?? 0) + 1;
          } else if (post.status === 401) {
            rejected();
            break;
          } else if (post.status === 403) {
            csrf();
            break;
          } else {
            fail(`session post http ${post.status}`);
            break;
          }
        }
        if (hosts.size > 1) crossed.add("x");
      } catch (e) {
        fail(e instanceof Error ? e.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/, "") : String(e));
        await pause();
      }
    }
    if (crossed.size > 0) result.crossHostSessions++;
    agent.destroy();
  }

  await Promise.all(Array.from({ length: spec.clients }, () => client()));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
