/**
 * A real HAProxy (Debian's package) in front of test hosts, in a network namespace of its own
 * that this module creates: one veth pair per host (10.77.N.1 on the balancer, 10.77.N.2 in the
 * host's namespace), and a drop-in that makes each host's pms-backend.socket also listen on
 * 10.77.N.2:8000 (the app's own socket, so restarts still queue). HAProxy health-checks
 * /health/ with the public Host header every 500 ms and retries a failed connection on another
 * server, as a production balancer is set up. Clients reach it at 127.0.0.1:8080 inside the
 * namespace (run the load generator there).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PUBLIC_HOST, TestFleet, TestHost } from "../testhost";

export const BALANCER_PORT = 8080;

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** Installs Debian's haproxy when the machine lacks it (a fresh machine has none). */
function ensureHaproxy(log: (l: string) => void): void {
  if (!spawnSync("haproxy", ["-v"]).error) return;
  log("installing Debian's haproxy ...");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", "--no-install-recommends", "haproxy"],
  ]) {
    const r = spawnSync("apt-get", args, { encoding: "utf8", env });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
}

export class Balancer {
  private haproxy?: ChildProcess;
  private constructor(
    readonly netns: string,
    private readonly dir: string,
  ) {}

  /** Wires `hosts` behind a new HAProxy; tear it down with close(). */
  static async start(
    fleet: TestFleet,
    hosts: TestHost[],
    log: (l: string) => void,
    options: { balance?: "leastconn" | "roundrobin" } = {},
  ): Promise<Balancer> {
    ensureHaproxy(log);
    const netns = `h10lb-${process.pid}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h10-lb-"));
    const lb = new Balancer(netns, dir);
    try {
      ip(["netns", "add", netns]);
      ip(["-n", netns, "link", "set", "lo", "up"]);
      const servers: string[] = [];
      for (const [i, h] of hosts.entries()) {
        const n = i + 1;
        const outer = `h10b${process.pid % 10000}x${n}`;
        const inner = `h10h${process.pid % 10000}x${n}`;
        ip(["link", "add", outer, "netns", netns, "type", "veth", "peer", "name", inner, "netns", `th-${h.id}`]);
        ip(["-n", netns, "addr", "add", `10.77.${n}.1/24`, "dev", outer]);
        ip(["-n", netns, "link", "set", outer, "up"]);
        ip(["-n", `th-${h.id}`, "addr", "add", `10.77.${n}.2/24`, "dev", inner]);
        ip(["-n", `th-${h.id}`, "link", "set", inner, "up"]);
        // The app's own socket also listens on the private address: restarts queue there too.
        const r = await fleet.exec(
          h,
          `install -d /etc/systemd/system/pms-backend.socket.d && printf '[Socket]\\nListenStream=10.77.${n}.2:8000\\nFreeBind=true\\n' >/etc/systemd/system/pms-backend.socket.d/50-balancer.conf && systemctl daemon-reload && systemctl stop pms-backend.service pms-backend.socket && systemctl start pms-backend.socket pms-backend.service`,
        );
        if (r.code !== 0) throw new Error(`${h.name}: balancer listen address: ${r.stderr}`);
        servers.push(`  server ${h.name} 10.77.${n}.2:8000 check inter 500 fall 2 rise 2`);
      }
      const cfg = path.join(dir, "haproxy.cfg");
      fs.writeFileSync(
        cfg,
        [
          "global",
          "  maxconn 4000",
          "defaults",
          "  mode http",
          "  timeout connect 5s",
          "  timeout client 30s",
          "  timeout server 30s",
          "  retries 3",
          "  option redispatch",
          "  retry-on conn-failure empty-response response-timeout",
          "frontend fe",
          `  bind 127.0.0.1:${BALANCER_PORT}`,
          "  default_backend app",
          "backend app",
          // leastconn: requests queued on a restarting host count as its open connections, so new
          // requests go to the others instead of piling up behind the restart (roundrobin would
          // stall every connection on that host in turn: no error, but seconds of nothing).
          // roundrobin (issue 20's session test): each request to the next host, no cookie pinning
          // a session to a host, so a logged-in client crosses hosts all the time.
          `  balance ${options.balance ?? "leastconn"}`,
          "  option httpchk",
          `  http-check send meth GET uri /health/ hdr Host ${PUBLIC_HOST}`,
          ...servers,
          "",
        ].join("\n"),
      );
      const check = spawnSync("haproxy", ["-c", "-f", cfg], { encoding: "utf8" });
      if (check.status !== 0) throw new Error(`haproxy -c: ${check.stdout}${check.stderr}`);
      lb.haproxy = spawn("ip", ["netns", "exec", netns, "haproxy", "-db", "-f", cfg], { stdio: "ignore" });
      await lb.waitAllUp(hosts.length, log);
      return lb;
    } catch (e) {
      await lb.close();
      throw e;
    }
  }

  /** Waits until HAProxy answers 200 through every server (health checks passed). */
  private async waitAllUp(n: number, log: (l: string) => void): Promise<void> {
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      let ok = 0;
      for (let i = 0; i < n * 2; i++) {
        const r = spawnSync(
          "ip",
          [
            "netns",
            "exec",
            this.netns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            `Host: ${PUBLIC_HOST}`,
            `http://127.0.0.1:${BALANCER_PORT}/health/`,
          ],
          { encoding: "utf8" },
        );
        if (r.stdout === "200") ok++;
      }
      if (ok === n * 2) {
        log(`balancer ${this.netns}: ${n} servers up`);
        return;
      }
      await new Promise((res) => setTimeout(res, 300));
    }
    throw new Error(`HAProxy in ${this.netns} did not serve through all ${n} servers within 30 s`);
  }

  async close(): Promise<void> {
    const p = this.haproxy;
    if (p?.pid !== undefined && p.exitCode === null) {
      const gone = new Promise((res) => p.once("close", res));
      p.kill("SIGTERM");
      await Promise.race([gone, new Promise((res) => setTimeout(res, 3000))]);
    }
    // Deleting the namespace removes the veth pairs (and their peers in the hosts' namespaces).
    spawnSync("ip", ["netns", "del", this.netns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
