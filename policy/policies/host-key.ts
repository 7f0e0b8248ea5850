import type { ResourceValidationPolicy } from "@pulumi/policy";
import { readString, UNKNOWN } from "../props";
import { isProductionUrn, productionStacksSchema, stackOfUrn, type ProductionConfig } from "../stack";
import { hostKeyProblem } from "../../components/config/hosts";
import { REMOTE_COMMAND } from "./types";

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
    // The program's own rule (components/config/hosts.ts): one key, a type the provider can use.
    const problem = hostKeyProblem(hostKey);
    if (problem !== undefined) {
      reportViolation(
        `${where} has a connection.hostKey that is not one authorized_keys-format key the provider can use ` +
          `(${problem}); fix hosts[].hostKey in the stack config with the server's ed25519 key.`,
      );
    }
  },
};
