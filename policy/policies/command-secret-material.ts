import type { ResourceValidationPolicy } from "@pulumi/policy";
import { collectStrings, readProp, readString, type StringLeaf } from "../props";
import {
  findSecretMaterial,
  isSecretName,
  MIN_KNOWN_SECRET_LENGTH,
  parseEnvFile,
  privateKeyFragments,
} from "../secret-scan";
import { COMMAND_TEXT_FIELDS, COMMAND_TYPES } from "./types";

/** A secret value whose presence elsewhere is a leak, and a label that names it without showing it. */
export interface KnownSecret {
  label: string;
  value: string;
}

/** The clear-text fields of a command (create/update/delete/environment/triggers) as string leaves. */
export function commandTextLeaves(props: unknown): StringLeaf[] {
  const leaves: StringLeaf[] = [];
  for (const field of COMMAND_TEXT_FIELDS) {
    leaves.push(...collectStrings(readProp(props, field), field).strings);
  }
  return leaves;
}

/**
 * Secrets a command itself carries in its secret inputs: the credential-named entries of the env
 * file it sends on `stdin`, and its SSH private key / password. Unknown values (preview) are skipped.
 */
export function secretsCarriedByCommand(name: string, props: unknown): KnownSecret[] {
  const secrets: KnownSecret[] = [];
  const stdin = readString(props, "stdin");
  if (typeof stdin === "string") {
    for (const [key, value] of parseEnvFile(stdin)) {
      if (isSecretName(key) && value.length >= MIN_KNOWN_SECRET_LENGTH) {
        secrets.push({ label: `the value of ${key} from the stdin of ${name}`, value });
      }
    }
  }
  const privateKey = readString(props, "connection", "privateKey");
  if (typeof privateKey === "string") {
    for (const fragment of privateKeyFragments(privateKey)) {
      secrets.push({ label: `the SSH private key of ${name} (connection.privateKey)`, value: fragment });
    }
  }
  const password = readString(props, "connection", "password");
  if (typeof password === "string" && password.length >= MIN_KNOWN_SECRET_LENGTH) {
    secrets.push({ label: `the SSH password of ${name} (connection.password)`, value: password });
  }
  return secrets;
}

/** Messages for every known secret that appears verbatim in a leaf; never includes the value. */
export function knownSecretLeaks(commandName: string, leaves: StringLeaf[], secrets: KnownSecret[]): string[] {
  const messages = new Set<string>();
  for (const leaf of leaves) {
    for (const secret of secrets) {
      if (secret.value.length >= MIN_KNOWN_SECRET_LENGTH && leaf.value.includes(secret.value)) {
        messages.add(
          `command ${commandName}: ${leaf.path} contains ${secret.label}. Command text is stored in clear ` +
            `text in the state, shown in previews and visible in process listings on the host; pass secrets ` +
            `on stdin only.`,
        );
      }
    }
  }
  return [...messages];
}

/**
 * Resource-level scan, run on a command's inputs before it is created or updated: secret-looking
 * material (PEM keys, AWS key ids, `PASSWORD=`-style assignments, long high-entropy tokens) and
 * the secrets the command itself carries on stdin/connection, in any clear-text field.
 */
export const commandTextNoSecretMaterial: ResourceValidationPolicy = {
  name: "command-text-no-secret-material",
  description:
    "No command's create/update/delete/environment/triggers contains secret-looking material or a secret the command carries on stdin.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, reportViolation) => {
    if (!COMMAND_TYPES.includes(args.type)) return;
    const leaves = commandTextLeaves(args.props);
    for (const leaf of leaves) {
      const found = new Set(findSecretMaterial(leaf.value).map((f) => f.what));
      for (const what of found) {
        reportViolation(
          `command ${args.name}: ${leaf.path} contains ${what}. Command text is stored in clear text in the ` +
            `state, shown in previews and visible in process listings; pass secrets on stdin only.`,
        );
      }
    }
    for (const message of knownSecretLeaks(args.name, leaves, secretsCarriedByCommand(args.name, args.props))) {
      reportViolation(message);
    }
  },
};
