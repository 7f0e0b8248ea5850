import type { ResourceValidationPolicy } from "@pulumi/policy";
import { readString, UNKNOWN } from "../props";
import { isProductionUrn, productionStacksSchema, stackOfUrn, type ProductionConfig } from "../stack";
import { REMOTE_COMMAND } from "./types";

/** One authorized_keys-format public key: `<type> <base64> [comment]`. */
export const HOST_KEY_PATTERN =
  /^(?:ssh-ed25519|ssh-rsa|rsa-sha2-256|rsa-sha2-512|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [^\r\n]*)?$/;

/**
 * Without `connection.hostKey`, @pulumi/command does not check the server's key at all, so whoever
 * answers on the address receives the env file with every production secret.
 */
export const remoteCommandHostKeyPinned: ResourceValidationPolicy = {
  name: "remote-command-host-key-pinned",
  description: "Every command:remote:Command on a production stack pins the SSH server key (connection.hostKey).",
  enforcementLevel: "mandatory",
  severity: "critical",
  configSchema: { properties: { productionStacks: productionStacksSchema } },
  validateResource: (args, reportViolation) => {
    if (args.type !== REMOTE_COMMAND) return;
    const production = isProductionUrn(args.urn, args.getConfig<ProductionConfig>());
    const hostKey = readString(args.props, "connection", "hostKey");
    // Known at `up` (it comes from stack config); if a program ever computes it, judge it then.
    if (hostKey === UNKNOWN) return;
    const host = readString(args.props, "connection", "host");
    const where = `command ${args.name}${typeof host === "string" ? ` (host ${host})` : ""}`;
    if (hostKey === undefined || hostKey.trim() === "") {
      if (!production) return;
      reportViolation(
        `${where} on production stack "${stackOfUrn(args.urn)}" has no connection.hostKey, so the SSH server key ` +
          `is not checked. Set hostKey for this host in the stack config (hosts[].hostKey, from ` +
          `\`ssh-keyscan -t ed25519 <address>\`, verified out of band).`,
      );
      return;
    }
    if (!HOST_KEY_PATTERN.test(hostKey.trim())) {
      reportViolation(
        `${where} has a connection.hostKey that is not one authorized_keys-format key ` +
          `("<type> <base64>", e.g. "ssh-ed25519 AAAA..."); fix hosts[].hostKey in the stack config.`,
      );
    }
  },
};
