import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { readString } from "../props";
import { isSecretName, MIN_KNOWN_SECRET_LENGTH } from "../secret-scan";
import {
  commandTextLeaves,
  knownSecretLeaks,
  secretsCarriedByCommand,
  type KnownSecret,
} from "./command-secret-material";
import { COMMAND_TYPES, generatedEnvKey, RANDOM_PASSWORD, SM_SECRET_VERSION } from "./types";

/**
 * Every secret value of the stack that is known at this point: RandomPassword results, the
 * credential-named and generated entries of the Secrets Manager document, and what each command
 * carries on stdin/connection. Values still unknown (a password being created during preview) are
 * skipped; the stack check that runs after `pulumi up` sees them.
 */
function collectStackSecrets(resources: PolicyResource[]): KnownSecret[] {
  const generatedKeys = new Set(
    resources.filter((r) => r.type === RANDOM_PASSWORD).map((r) => generatedEnvKey(r.name)),
  );
  const secrets: KnownSecret[] = [];
  for (const r of resources) {
    if (r.type === RANDOM_PASSWORD) {
      const result = readString(r.props, "result");
      if (typeof result === "string" && result.length >= MIN_KNOWN_SECRET_LENGTH) {
        secrets.push({ label: `the result of ${r.name}`, value: result });
      }
    } else if (r.type === SM_SECRET_VERSION) {
      const document = readString(r.props, "secretString");
      if (typeof document !== "string") continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(document);
      } catch {
        continue; // the secret-strength policy reports a document that is not JSON
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) continue;
      for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
        if (typeof value !== "string" || value.length < MIN_KNOWN_SECRET_LENGTH) continue;
        if (isSecretName(key) || generatedKeys.has(key)) {
          secrets.push({ label: `the value of ${key} in ${r.name}.secretString`, value });
        }
      }
    } else if (COMMAND_TYPES.includes(r.type)) {
      secrets.push(...secretsCarriedByCommand(r.name, r.props));
    }
  }
  return secrets;
}

/**
 * Stack-level check: no command's clear-text fields contain a secret of the stack, wherever that
 * secret comes from (a generated password, the Secrets Manager document, another command's stdin).
 */
export const commandTextNoStackSecret: StackValidationPolicy = {
  name: "command-text-no-stack-secret",
  description: "No command's create/update/delete/environment/triggers contains a value that is a secret of the stack.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateStack: (args, reportViolation) => {
    const secrets = collectStackSecrets(args.resources);
    if (secrets.length === 0) return;
    for (const r of args.resources) {
      if (!COMMAND_TYPES.includes(r.type)) continue;
      for (const message of knownSecretLeaks(r.name, commandTextLeaves(r.props), secrets)) {
        reportViolation(message, r.urn);
      }
    }
  },
};
