/** `hosts`: the servers, how to reach them and the server key each must present. */
import { isIP } from "node:net";
import { documentationHostProblem, placeholderProblem } from "./placeholders";
import type { Problems } from "./problems";
import { isObject, NumberRange, scalar, unknownKeys, wholeNumber } from "./read";

export interface HostSpec {
  /** Short name, used in resource names and messages: lower-case letters, digits and dashes. */
  name: string;
  /** DNS name or IP address sshd listens on. */
  address: string;
  /** sshd port. Default 22. */
  port: number;
  /** SSH login user. Default root; any other user needs passwordless `sudo -n`. */
  user: string;
  /** Server host key in authorized_keys form ("ssh-ed25519 AAAA..."). Required on production. */
  hostKey?: string;
}

export interface HostRules {
  /** Every host must pin its key (production, or `requireHostKeys`). */
  requireHostKeys: boolean;
  /** Why keys are required, for the message. */
  because: string;
}

/** The keys of one `hosts` entry. */
export const HOST_KEYS = ["name", "address", "port", "user", "hostKey"] as const;

const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
export const UNIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Host key types the command provider can use. It offers the server ONLY the pinned key's
 * algorithm (pulumi-command `connection.go`: HostKeyAlgorithms = [key.Type()]), so:
 * ssh-ed25519 and ecdsa-sha2-* work with any OpenSSH server that has such a key (Debian and
 * Ubuntu generate both); ssh-rsa means SHA-1 signatures, which OpenSSH >= 8.8 refuses, so
 * every rollout would fail; security-key (sk-) types are never server keys.
 */
const USABLE_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];
const UNUSABLE_KEY_TYPES: Readonly<Record<string, string>> = {
  "ssh-rsa":
    "is an ssh-rsa key: the command provider would offer only ssh-rsa (SHA-1) signatures, which OpenSSH 8.8 and later refuse, so every rollout would fail",
  "sk-ssh-ed25519@openssh.com": "is a security-key type, which is never a server's host key",
  "sk-ecdsa-sha2-nistp256@openssh.com": "is a security-key type, which is never a server's host key",
};
const KNOWN_KEY_TYPES = [...USABLE_KEY_TYPES, ...Object.keys(UNUSABLE_KEY_TYPES)];

/** The ssh-keyscan command that prints `address`'s ed25519 key. */
export function keyscanCommand(address: string, port: number): string {
  return `ssh-keyscan -t ed25519${port === 22 ? "" : ` -p ${port}`} ${address || "<address>"}`;
}

/** Why `line` is not one usable host key in authorized_keys form, or undefined when it is. */
export function hostKeyProblem(line: string): string | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields.length >= 3 && KNOWN_KEY_TYPES.includes(fields[1]) && !KNOWN_KEY_TYPES.includes(fields[0])) {
    return "looks like a known_hosts line; drop the leading host name and keep `<type> <base64>`";
  }
  if (!KNOWN_KEY_TYPES.includes(fields[0])) {
    return `must start with a key type (${USABLE_KEY_TYPES.slice(0, 2).join(", ")}, ...), as printed by ssh-keyscan`;
  }
  if (fields.length < 2 || !/^[A-Za-z0-9+/]+={0,2}$/.test(fields[1])) {
    return "must be `<type> <base64 key>`; the key part is missing or not base64";
  }
  // The blob starts with the key type again (RFC 4253 string): a truncated or pasted-wrong key fails here.
  const blob = Buffer.from(fields[1], "base64");
  const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (typeLength < 0 || blob.length < 4 + typeLength || blob.subarray(4, 4 + typeLength).toString() !== fields[0]) {
    return `the base64 key does not encode a ${fields[0]} key (truncated or mismatched copy?)`;
  }
  return UNUSABLE_KEY_TYPES[fields[0]];
}

/**
 * A DNS name as RFC 1123 allows it (labels of letters, digits and inner dashes, at most 63 each,
 * 253 in all, an optional final dot), whose last label is not all digits (`1.2.3` would be read as
 * an IPv4 address by some resolvers). Anything else (`web1;id`, `$(id)`, `-oProxyCommand=...`,
 * `web_1`) is refused: the address reaches the SSH dialer, messages and docs' shell lines.
 */
const DNS_NAME =
  /^(?=.{1,253}\.?$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;

/** Whether `address` is a DNS name or an IPv4/IPv6 literal (no brackets, no port). */
export function isHostAddress(address: string): boolean {
  if (isIP(address) !== 0) return true;
  return DNS_NAME.test(address) && !/(?:^|\.)\d+\.?$/.test(address);
}

/** Why `address` is not a plain DNS name or IP address, with the fix, or undefined. */
function addressProblem(address: string, at: string): [string, string] | undefined {
  const where = "set the DNS name or IP address the host's sshd listens on";
  if (address === "") return ["is empty", where];
  if (/\s/.test(address)) return ["contains whitespace", where];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return ["is a URL", `${where}, without a scheme`];
  if (address.includes("@")) {
    return ["contains a login user (user@host)", `put the host alone in ${at}.address and the user in ${at}.user`];
  }
  if (/^\[.*\](?::\d+)?$/.test(address) || /^[^:]+:\d*$/.test(address)) {
    return ["contains a port (host:port)", `put the host alone in ${at}.address and the port in ${at}.port`];
  }
  const placeholder = placeholderProblem(address) ?? documentationHostProblem(address);
  if (placeholder) return [placeholder, where];
  if (!isHostAddress(address)) {
    return [
      `${JSON.stringify(address)} is neither a DNS name nor an IP address`,
      `${where}: a name of letters, digits, dashes and dots (e.g. web1.internal) or an IP literal (e.g. 10.0.0.5, fe80::2)`,
    ];
  }
  return undefined;
}

export const PORT: NumberRange = { min: 1, max: 65535, default: 22, unit: "the TCP port sshd listens on" };

function parseHostKey(
  problems: Problems,
  rules: HostRules,
  at: string,
  host: HostSpec,
  value: unknown,
): string | undefined {
  const keyscan = keyscanCommand(host.address, host.port);
  if (value === undefined || value === "") {
    if (rules.requireHostKeys) {
      problems.add(
        `${at}.hostKey`,
        `is missing; ${rules.because} requires every host key to be pinned`,
        `run \`${keyscan}\`, verify the fingerprint out of band, then \`pulumi config set --path '${at}.hostKey' 'ssh-ed25519 AAAA...'\``,
      );
    } else {
      problems.warn(
        `${at}.hostKey`,
        `is not set: the SSH server key of ${host.name || at} is not checked. Pin it before going to production.`,
      );
    }
    return undefined;
  }
  const line = scalar(value).trim();
  const why = placeholderProblem(line) ?? hostKeyProblem(line);
  if (why) {
    problems.add(
      `${at}.hostKey`,
      why,
      `pin the ed25519 key: run \`${keyscan}\`, verify it out of band, and paste "ssh-ed25519 AAAA..."`,
    );
  }
  return line.split(/\s+/).slice(0, 2).join(" ");
}

function parseHost(problems: Problems, rules: HostRules, at: string, h: unknown): HostSpec | undefined {
  if (!isObject(h)) {
    problems.add(
      at,
      "must be an object {name, address, port?, user?, hostKey?}",
      `set --path '${at}.name' and '${at}.address'`,
    );
    return undefined;
  }
  unknownKeys(problems, at, h, HOST_KEYS);
  const name = typeof h.name === "string" ? h.name : "";
  if (!HOST_NAME.test(name)) {
    problems.add(
      `${at}.name`,
      name === "" ? "is missing" : `${JSON.stringify(name)} is not a valid host name`,
      "use 1-40 lower-case letters, digits and dashes, e.g. web1",
    );
  }
  const address = typeof h.address === "string" ? h.address.trim() : "";
  const bad = addressProblem(address, at);
  if (bad) problems.add(`${at}.address`, ...bad);
  const user = h.user === undefined ? "root" : scalar(h.user);
  if (!UNIX_NAME.test(user)) {
    problems.add(
      `${at}.user`,
      `${JSON.stringify(user)} is not a valid login name`,
      "use the SSH login user (default root)",
    );
  }
  const host: HostSpec = { name, address, port: wholeNumber(problems, `${at}.port`, h.port, PORT), user };
  host.hostKey = parseHostKey(problems, rules, at, host, h.hostKey);
  return host;
}

/** Parses `hosts`: a non-empty list, unique names, unique address:port targets. */
export function parseHosts(problems: Problems, value: unknown, rules: HostRules): HostSpec[] {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) {
    problems.add(
      "hosts",
      "no hosts are configured",
      "add at least one, e.g. `pulumi config set --path 'hosts[0].name' web1` and `--path 'hosts[0].address' 10.0.0.5`",
    );
    return [];
  }
  if (!Array.isArray(value)) {
    problems.add(
      "hosts",
      "must be a list of {name, address, port?, user?, hostKey?}",
      "set it with --path 'hosts[0].name' ...",
    );
    return [];
  }
  const hosts: HostSpec[] = [];
  const names = new Set<string>();
  const targets = new Set<string>();
  value.forEach((h: unknown, i: number) => {
    const at = `hosts[${i}]`;
    const host = parseHost(problems, rules, at, h);
    if (!host) return;
    if (host.name !== "" && names.has(host.name)) {
      problems.add(`${at}.name`, `duplicate host name ${JSON.stringify(host.name)}`, "give every host a unique name");
    }
    const target = `${host.address}:${host.port}`;
    if (host.address !== "" && targets.has(target)) {
      problems.add(`${at}.address`, `${target} is already the target of another host`, "list every host once");
    }
    names.add(host.name);
    targets.add(target);
    hosts.push(host);
  });
  return hosts;
}
