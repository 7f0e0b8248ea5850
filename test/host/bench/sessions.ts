/**
 * Logged-in browser sessions across a fleet (issue 20), run inside the balancer's network
 * namespace: each client logs in through Django's stock LoginView (/accounts/login/: the form's
 * CSRF token, then the POST), then keeps reading a page that needs the session (/session/) and
 * posting a CSRF-protected form (/session/post/), and logs in again every few requests, until
 * stopped. Cookies are kept as a browser keeps them (every Set-Cookie applied), so a session
 * re-signed by one host is what the next host sees. See sessions-worker.ts for what each count means.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";

export interface SessionSpec {
  netns: string;
  /** Port on 127.0.0.1 inside the namespace (the balancer's frontend). */
  port: number;
  hostHeader: string;
  username: string;
  password: string;
  /** Concurrent clients (each one browser: its own cookies and connection). */
  clients: number;
  /** Session requests (a GET and a POST each) between two logins. */
  requestsPerLogin: number;
  /** Pause between two requests of one client, ms. */
  pauseMs: number;
}

export interface SessionResult {
  logins: number;
  /** Authenticated GETs and POSTs answered as the logged-in user. */
  ok: number;
  /** A request that carried a session cookie and was answered as not logged in (401). */
  rejectedSessions: number;
  /** 403 from CsrfViewMiddleware: the form's token was refused (login form or session POST). */
  csrfFailures: number;
  /** Anything else: a connection error, a timeout, a 5xx, an unexpected status. */
  failed: number;
  errors: Record<string, number>;
  /** Which hosts answered (socket.gethostname() of the app), with counts. */
  hosts: Record<string, number>;
  /** How many clients had requests of one session answered by more than one host. */
  crossHostSessions: number;
  firstRejectionMs?: number;
  lastRejectionMs?: number;
}

export interface RunningSessions {
  stop(): Promise<SessionResult>;
}

/** Four browsers; a login (PBKDF2, ~0.3 s of a core) every 25 GET+POST pairs keeps the hosts' CPU for the rollout. */
export const DEFAULT_SESSIONS = { clients: 4, requestsPerLogin: 25, pauseMs: 25 } as const;

export async function startSessions(spec: SessionSpec): Promise<RunningSessions> {
  const worker = path.join(__dirname, "sessions-worker.ts");
  const child = spawn(
    "ip",
    ["netns", "exec", spec.netns, process.execPath, "--import", "tsx", worker, JSON.stringify(spec)],
    { stdio: ["pipe", "pipe", "pipe"], cwd: path.join(__dirname, "..", "..", "..") },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((res) => child.on("close", (code) => res(code ?? -1)));
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 60000;
    const t = setInterval(() => {
      if (out.startsWith("ready\n")) {
        clearInterval(t);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(t);
        child.kill();
        reject(new Error(`session clients in ${spec.netns} did not all log in within 60 s: ${err.slice(-800)}`));
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(t);
      reject(new Error(`session clients in ${spec.netns} exited ${code} before they logged in: ${err.slice(-800)}`));
    });
  });
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) throw new Error(`session clients in ${spec.netns} exited ${code}: ${err.slice(-800)}`);
      return JSON.parse(line) as SessionResult;
    },
  };
}
