/**
 * docs/GETTING-STARTED.md, run as written: every `sh` block of the page, in order, against one
 * real test host and the real `pulumi` CLI, as runbook.test.ts does for the runbook. Blocks that
 * say "on your machine" run line by line in the operator's shell (bash in the project workspace,
 * the real `pulumi`, Debian's `aws` pointed at Moto, which stands in for S3, KMS, STS and Secrets
 * Manager on 127.0.0.1); the shell's exported variables carry from one line to the next, as in one
 * terminal (the ssh-agent the page starts included). Blocks that say "on each host, as root" run
 * as one bash script as root on the host. Placeholders are substituted (the test host's address
 * and forwarded port, the bucket and region, the deploy key, the policy pack's absolute path).
 * The one block that needs the internet (installing the CLI and the npm packages) is not run;
 * its CLI version is checked against the CLI the test runs. The host has no network either: its
 * `apt-get install` line runs against a stand-in that checks each package is installed.
 *
 *   node --import tsx --test test/host/getting-started.test.ts     (root, Linux, awscli)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { PulumiStack, REPO } from "./pulumi-cli";
import { ENV_FILE, hostFile, servicesState, unavailable } from "./scenario";
import {
  bootFleet,
  hostTestsUnavailableReason,
  PUBLIC_HOST,
  TEST_DB,
  TestFleet,
  TestHost,
  verboseLog,
} from "./testhost";
import { codeBlocks } from "../doc-blocks";

const AWS_CLI = "/usr/bin/aws";
const PAGE = fs.readFileSync(path.join(REPO, "docs", "GETTING-STARTED.md"), "utf8");
const skip =
  unavailable(hostTestsUnavailableReason()) ??
  unavailable(fs.existsSync(AWS_CLI) ? undefined : `${AWS_CLI} is missing: apt-get install awscli`);
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/**
 * The test hosts have no network and no package lists, so the page's `apt-get install` line runs
 * against this stand-in: it checks that every package it names is installed (postgresql-client
 * as the versioned client the metapackage pulls in, postgresql-client-17 on the test image) and
 * fails naming the first that is not.
 */
const OFFLINE_APT = `apt-get() {
  [ "$1" = install ] || { echo "apt-get $1: only install is expected here" >&2; return 1; }
  shift
  local p status
  for p in "$@"; do
    case $p in -*) continue ;; esac
    status=$(dpkg-query -W -f='\${Status};' "$p" "$p-[0-9]*" 2>/dev/null || true)
    case $status in
      *"install ok installed"*) ;;
      *) echo "apt-get install: $p is not installed on this host" >&2; return 1 ;;
    esac
  done
}
`;

const OPERATOR = "# on your machine";
const HOST = "# on each host, as root";
const NEEDS_INTERNET = "(needs the internet)";

interface ShellResult {
  code: number;
  output: string;
}

describe(
  "docs/GETTING-STARTED.md as written: a first production deploy, real pulumi + awscli on Moto, one host",
  { skip },
  () => {
    let fleet: TestFleet;
    let web1: TestHost;
    let stack: PulumiStack;
    let stateFile: string;
    /** Everything the operator's shell and the host blocks printed (scanned for secrets at the end). */
    const printed: string[] = [];
    const supplied: Record<string, string> = {
      DB_PASSWORD: TEST_DB.password,
      HUBTEL_CLIENT_ID: "hubtel-getting-started-client-id",
      HUBTEL_CLIENT_SECRET: "hubtel-getting-started-client-secret",
      PAYSTACK_SECRET_KEY: "sk_test_getting_started_paystack_0123456789",
    };

    const substitutions = (): Array<[string, string]> => [
      ["<state bucket>", "pms-state"],
      ["<region>", "eu-west-1"],
      ["-p 22 web1.internal", `-p ${web1.sshPort} ${web1.address}`],
      ["'hosts[0].port' 22", `'hosts[0].port' ${web1.sshPort}`],
      ["web1.internal", web1.address],
      ["api.your-domain.com", PUBLIC_HOST],
      ["'ssh-ed25519 AAAA... pms-deploy'", `'${fs.readFileSync(`${fleet.privateKeyPath}.pub`, "utf8").trim()}'`],
      ["~/.ssh/pms_deploy_ed25519", fleet.privateKeyPath],
      [
        "--policy-pack policy --policy-pack-config policy/config.json",
        `--policy-pack ${path.join(REPO, "policy")} --policy-pack-config ${path.join(REPO, "policy", "config.json")}`,
      ],
    ];
    const substitute = (text: string): string => {
      let out = text;
      for (const [k, v] of substitutions()) out = out.replaceAll(k, v);
      // Every placeholder is replaced: nothing reaches a name or address outside the test.
      assert.doesNotMatch(out, /web1\.internal|your-domain|<[a-z ]+>|AAAA\.\.\./, `a placeholder is left in:\n${out}`);
      return out;
    };

    /** One operator line in bash, in the workspace, with the variables the earlier lines exported. */
    const operatorLine = (line: string, stdin = ""): Promise<ShellResult> =>
      new Promise((resolve) => {
        const env = { ...stack.env(), AWS_CLI_BIN: AWS_CLI, AWS_PAGER: "", MOTO_ENDPOINT: stack.moto.endpoint };
        const script =
          'aws() { "$AWS_CLI_BIN" --endpoint-url "$MOTO_ENDPOINT" "$@"; }\n' +
          `if [ -f '${stateFile}' ]; then . '${stateFile}'; fi\n` +
          `trap 'export -p > "${stateFile}"' EXIT\n` +
          "set -euo pipefail\n" +
          line;
        const child = spawn("bash", ["-c", script], { cwd: stack.workspace, env, stdio: "pipe" });
        let output = "";
        child.stdout.on("data", (d: Buffer) => (output += d.toString()));
        child.stderr.on("data", (d: Buffer) => (output += d.toString()));
        child.stdin.on("error", () => undefined); // a line that exits without reading stdin: its exit code tells
        child.on("close", (code) => {
          // The CLI colours its output when it thinks it may; the checks read the text.
          output = output.replace(/\x1b\[[0-9;]*m/g, "");
          printed.push(output);
          log(`$ ${line}\n${output}`);
          resolve({ code: code ?? 1, output });
        });
        child.stdin.end(stdin);
      });

    /** The ssh-agent the page's `eval "$(ssh-agent -s)"` started, from the shell's exported variables. */
    const agentPid = (): number | undefined => {
      if (!stateFile || !fs.existsSync(stateFile)) return undefined;
      const m = /SSH_AGENT_PID="?(\d+)"?/.exec(fs.readFileSync(stateFile, "utf8"));
      return m ? Number(m[1]) : undefined;
    };

    before(async () => {
      fleet = await bootFleet(["web1"], log, { httpHost: "public" });
      web1 = fleet.hosts[0];
      stack = await PulumiStack.create({ stack: "prod", log });
      stack.noteSecret(fleet.privateKey);
      for (const v of Object.values(supplied)) stack.noteSecret(v);
      stateFile = path.join(stack.workspace, "..", "operator-shell.sh");
      // The clone holds the shipped stack file (step 3 starts from it).
      stack.writeStackFile(fs.readFileSync(path.join(REPO, "Pulumi.prod.yaml"), "utf8"));
    });
    after(async () => {
      const pid = agentPid();
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      await stack?.dispose();
      await fleet?.teardown();
    });

    it("every block runs as written: tools, AWS, S3 backend + KMS, stack, secrets, host preparation, preview, up; the host runs the new env and the checks of 'What success looks like' pass", async () => {
      // The operator's account: the S3 bucket and KMS keys the page creates live in Moto.
      const blocks = codeBlocks(PAGE).filter((b) => b.lang === "sh");
      const where = blocks.map((b) => b.text.split("\n")[0]);
      for (const w of where)
        assert.ok(w.startsWith(OPERATOR) || w.startsWith(HOST), `each block says where it runs: ${w}`);
      const notRun = blocks.filter((b) => b.text.split("\n")[0].includes(NEEDS_INTERNET));
      assert.equal(notRun.length, 1, "one block needs the internet (installing), the test runs every other");
      const cliVersion = /--version (\d+\.\d+\.\d+)/.exec(notRun[0].text)?.[1];
      assert.ok(cliVersion, "the install block pins the CLI version");

      let upOutput = "";
      let previewOutput = "";
      const hostOutputs: string[] = [];
      for (const block of blocks) {
        if (block === notRun[0]) continue;
        const text = substitute(block.text);
        if (text.startsWith(HOST)) {
          const r = await fleet.exec(web1, "bash -euo pipefail -s", { stdin: OFFLINE_APT + text });
          printed.push(r.stdout + r.stderr);
          log(`[web1]# ${text}\n${r.stdout}${r.stderr}`);
          assert.equal(r.code, 0, `on web1 (GETTING-STARTED.md line ${block.line}):\n${text}\n${r.stdout}${r.stderr}`);
          hostOutputs.push(r.stdout);
          continue;
        }
        for (const line of text.split("\n").slice(1)) {
          if (line.trim() === "" || line.startsWith("#")) continue;
          const secret = /--secret --path 'secrets\.(\w+)'$/.exec(line)?.[1];
          if (secret !== undefined) assert.ok(secret in supplied, `a value for ${secret}`);
          const r = await operatorLine(line, secret === undefined ? "" : `${supplied[secret]}\n`);
          assert.equal(r.code, 0, `GETTING-STARTED.md line ${block.line}: ${line}\n${r.output}`);
          if (line.startsWith("pulumi version")) assert.equal(r.output.trim(), `v${cliVersion}`);
          if (line.startsWith("pulumi preview")) previewOutput = r.output;
          if (line.startsWith("pulumi up")) upOutput = r.output;
          if (line.startsWith("aws sts get-caller-identity")) assert.match(r.output.trim(), /^\d{12}$/);
          if (line.startsWith("pulumi stack init")) {
            assert.match(
              stack.stackFile(),
              /^secretsprovider: awskms:\/\/alias\/pulumi-pms-secrets-prod\?region=eu-west-1$/m,
            );
          }
        }
      }

      // The stack file: no placeholder left, the secrets encrypted.
      const file = stack.stackFile();
      assert.doesNotMatch(file, /REPLACE-with/, "no placeholder value left in Pulumi.prod.yaml");
      for (const v of Object.values(supplied)) assert.ok(!file.includes(v), "secrets only as ciphertext");
      assert.match(file, /hostKey: ssh-ed25519 AAAA/);
      // Preview: one rollout to create, no mandatory policy violation.
      assert.match(previewOutput, /web1-rollout/);
      assert.doesNotMatch(previewOutput, /mandatory/);
      // Up: what the page says success looks like.
      assert.match(upOutput, /Resources:\s*\n\s*\+ \d+ created/);
      assert.ok(upOutput.includes(`done: ${ENV_FILE} in place and proven`), "the rollout's last word");
      const env = await hostFile(fleet, web1, ENV_FILE);
      assert.deepEqual([env.mode, env.owner], ["600", "root:root"]);
      for (const [svc, u] of Object.entries(await servicesState(fleet, web1)))
        assert.equal(u.activeState, "active", svc);
      assert.equal((await fleet.http(web1, "/health/")).status, 200);
      const last = hostOutputs.at(-1) ?? "";
      assert.match(last, /done: \/etc\/pms-backend\/\.env\.production in place and proven/);
      assert.match(last, /pms-backend runs on the SECRET_KEY of the env file/);
      // The deploy user got exactly the page's sudo rule, and the rollout went through it.
      assert.match(upOutput, /worker: pms-rollout-/);
      const rule = await fleet.exec(web1, "cat /etc/sudoers.d/pms-rollout");
      assert.equal(
        rule.stdout,
        "Defaults:deploy !log_input, !log_output\ndeploy ALL=(root) NOPASSWD: /bin/bash -s -- *\n",
      );
    });

    it("nothing the operator's shell or the host blocks printed holds a secret", async () => {
      await stack.exportState();
      const secrets = [...stack.secrets, stack.generatedValue("SECRET_KEY")];
      assert.ok(secrets.length >= 6);
      for (const s of secrets) assert.ok(!printed.some((o) => o.includes(s)), `printed ${s.slice(0, 6)}...`);
    });
  },
);
