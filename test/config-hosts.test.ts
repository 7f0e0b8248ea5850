import { test } from "node:test";
import assert from "node:assert/strict";
import { hostKeyProblem, keyscanCommand, parseHosts, HostRules } from "../components/config/hosts";
import { assertProblem, check, keysOf } from "./config-check";
import { TEST_HOST_KEY } from "./harness";

const open: HostRules = { requireHostKeys: false, because: 'stack "dev"' };
const pinned: HostRules = { requireHostKeys: true, because: 'production stack "prod"' };
const hosts = (value: unknown, rules = open) => check((p) => parseHosts(p, value, rules));

/** An authorized_keys line of `type` whose blob is well formed (type string + filler). */
function keyOfType(type: string): string {
  const name = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(name.length);
  return `${type} ${Buffer.concat([len, name, Buffer.alloc(40, 7)]).toString("base64")}`;
}

test("a valid host list gives typed hosts with defaults port 22 and user root", () => {
  const { result, problems } = hosts([
    { name: "web1", address: "10.0.0.11", hostKey: `${TEST_HOST_KEY} root@web1` },
    { name: "web2", address: "fe80::2", port: 2222, user: "deploy" },
  ]);
  assert.deepEqual(problems, []);
  assert.deepEqual(result, [
    { name: "web1", address: "10.0.0.11", port: 22, user: "root", hostKey: TEST_HOST_KEY },
    { name: "web2", address: "fe80::2", port: 2222, user: "deploy", hostKey: undefined },
  ]);
});

const cases: Array<[string, unknown, string, RegExp]> = [
  ["missing list", undefined, "hosts", /no hosts/],
  ["empty list", [], "hosts", /no hosts/],
  ["not a list", "web1", "hosts", /must be a list/],
  ["empty address", [{ name: "web1", address: "" }], "hosts[0].address", /is empty/],
  [
    "duplicate names",
    [
      { name: "web1", address: "a" },
      { name: "web1", address: "b" },
    ],
    "hosts[1].name",
    /duplicate host name "web1"/,
  ],
  [
    "same target twice",
    [
      { name: "web1", address: "a" },
      { name: "web2", address: "a" },
    ],
    "hosts[1].address",
    /a:22 is already the target/,
  ],
  [
    "port out of range",
    [{ name: "web1", address: "a", port: 70000 }],
    "hosts[0].port",
    /70000 is not a whole number from 1 to 65535.*TCP port sshd listens on/,
  ],
  ["port zero", [{ name: "web1", address: "a", port: 0 }], "hosts[0].port", /not a whole number from 1 to 65535/],
  [
    "user@host:port",
    [{ name: "web1", address: "deploy@10.0.0.5:2222" }],
    "hosts[0].address",
    /login user.*Fix: put the host alone in hosts\[0\]\.address and the user in hosts\[0\]\.user/,
  ],
  [
    "host:port",
    [{ name: "web1", address: "10.0.0.5:2222" }],
    "hosts[0].address",
    /contains a port.*Fix: .*hosts\[0\]\.port/,
  ],
  ["[v6]:port", [{ name: "web1", address: "[fe80::2]:22" }], "hosts[0].address", /contains a port/],
  ["ssh:// URL", [{ name: "web1", address: "ssh://web1" }], "hosts[0].address", /is a URL/],
  ["REPLACE placeholder", [{ name: "web1", address: "REPLACE-me" }], "hosts[0].address", /placeholder/],
  ["documentation name", [{ name: "web1", address: "web1.pms.example.com" }], "hosts[0].address", /documentation name/],
  ["documentation network", [{ name: "web1", address: "203.0.113.10" }], "hosts[0].address", /documentation network/],
  [
    "shell metacharacters",
    [{ name: "web1", address: "web1;id" }],
    "hosts[0].address",
    /"web1;id" is neither a DNS name nor an IP address.*Fix: .*DNS name or IP address/,
  ],
  [
    "command substitution",
    [{ name: "web1", address: "$(id)" }],
    "hosts[0].address",
    /neither a DNS name nor an IP address/,
  ],
  [
    "an ssh option",
    [{ name: "web1", address: "-oProxyCommand=id" }],
    "hosts[0].address",
    /neither a DNS name nor an IP address/,
  ],
  [
    "underscore",
    [{ name: "web1", address: "web_1.internal" }],
    "hosts[0].address",
    /neither a DNS name nor an IP address/,
  ],
  [
    "label too long",
    [{ name: "web1", address: `${"a".repeat(64)}.internal` }],
    "hosts[0].address",
    /neither a DNS name/,
  ],
  ["dashed label edge", [{ name: "web1", address: "web1-.internal" }], "hosts[0].address", /neither a DNS name/],
  [
    "numeric last label (not an IPv4 literal)",
    [{ name: "web1", address: "10.0.5" }],
    "hosts[0].address",
    /neither a DNS name/,
  ],
  ["bad login name", [{ name: "web1", address: "a", user: "Deploy User" }], "hosts[0].user", /not a valid login name/],
  [
    "malformed hostKey",
    [{ name: "web1", address: "a", hostKey: "ssh-ed25519 not!base64" }],
    "hosts[0].hostKey",
    /not base64/,
  ],
  [
    "hostKey of another type than its blob",
    [{ name: "web1", address: "a", hostKey: TEST_HOST_KEY.replace("ssh-ed25519", "ecdsa-sha2-nistp256") }],
    "hosts[0].hostKey",
    /does not encode a ecdsa-sha2-nistp256 key/,
  ],
  [
    "known_hosts line",
    [{ name: "web1", address: "a", hostKey: `web1.example.com ${TEST_HOST_KEY}` }],
    "hosts[0].hostKey",
    /known_hosts line/,
  ],
  [
    "hostKey placeholder",
    [{ name: "web1", address: "a", hostKey: "REPLACE-with-ssh-ed25519-key-of-web1" }],
    "hosts[0].hostKey",
    /placeholder/,
  ],
];
for (const [title, value, key, what] of cases) {
  test(`hosts: ${title} -> ${key}`, () => {
    assertProblem(hosts(value).problems, key, what);
  });
}

test("hosts: DNS names and IP literals are accepted as addresses", () => {
  for (const address of [
    "web1",
    "web1.internal",
    "web1.internal.",
    "10.0.0.5",
    "::1",
    "fe80::2",
    "fe80::2%eth0",
    "a-b.c-d.e",
  ]) {
    assert.deepEqual(hosts([{ name: "web1", address }]).problems, [], address);
  }
});

test("a pinned ssh-rsa key is refused (SHA-1 only with the provider) with the ed25519 fix", () => {
  const line = assertProblem(
    hosts([{ name: "web1", address: "a", port: 2222, hostKey: keyOfType("ssh-rsa") }]).problems,
    "hosts[0].hostKey",
    /ssh-rsa.*OpenSSH 8\.8/,
  );
  assert.match(line, /Fix: pin the ed25519 key: run `ssh-keyscan -t ed25519 -p 2222 a`/);
});

test("ecdsa keys are accepted (the provider offers ecdsa-sha2-*, which OpenSSH servers accept); sk- keys are not host keys", () => {
  for (const type of ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-ed25519"]) {
    assert.equal(hostKeyProblem(keyOfType(type)), undefined, type);
  }
  assert.match(hostKeyProblem(keyOfType("sk-ssh-ed25519@openssh.com")) ?? "", /never a server's host key/);
});

test("hostKeyProblem rejects truncated keys and bare base64", () => {
  assert.equal(hostKeyProblem(TEST_HOST_KEY), undefined);
  assert.match(hostKeyProblem(TEST_HOST_KEY.slice(0, 30)) ?? "", /does not encode/);
  assert.match(hostKeyProblem("AAAAC3Nza") ?? "", /must start with a key type/);
});

test("required host keys: missing is a problem naming why, with ssh-keyscan -p for a non-22 port", () => {
  const line = assertProblem(
    hosts([{ name: "web1", address: "h", port: 2200 }], pinned).problems,
    "hosts[0].hostKey",
    /is missing; production stack "prod" requires/,
  );
  assert.match(line, /`ssh-keyscan -t ed25519 -p 2200 h`/);
  const on22 = assertProblem(hosts([{ name: "web1", address: "h" }], pinned).problems, "hosts[0].hostKey", /missing/);
  assert.match(on22, /`ssh-keyscan -t ed25519 h`/);
});

test("an unpinned host where keys are optional is a warning naming the host", () => {
  const { problems, warnings } = hosts([{ name: "web1", address: "a" }]);
  assert.deepEqual(problems, []);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^pms-secrets:hosts\[0\]\.hostKey is not set: the SSH server key of web1/);
});

test("every host's problems are listed, one per key", () => {
  const { problems } = hosts([{ name: "Web 1", address: "", port: "x" }, "oops"], pinned);
  assert.deepEqual(keysOf(problems).sort(), [
    "hosts[0].address",
    "hosts[0].hostKey",
    "hosts[0].name",
    "hosts[0].port",
    "hosts[1]",
  ]);
});

test("keyscanCommand adds -p only for a port other than 22", () => {
  assert.equal(keyscanCommand("web1", 22), "ssh-keyscan -t ed25519 web1");
  assert.equal(keyscanCommand("web1", 2222), "ssh-keyscan -t ed25519 -p 2222 web1");
  assert.equal(keyscanCommand("", 22), "ssh-keyscan -t ed25519 <address>");
});

test("a misspelt key of a host (hostkey) is refused naming it, instead of leaving the key unpinned", () => {
  const { problems } = hosts([{ name: "web1", address: "10.0.0.5", hostkey: TEST_HOST_KEY }]);
  assert.deepEqual(keysOf(problems), ["hosts[0].hostkey"]);
  assertProblem(
    problems,
    "hosts[0].hostkey",
    /is not a setting of hosts\[0\].*Fix: use name, address, port, user, hostKey/,
  );
});
