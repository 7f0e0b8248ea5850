import type { ResourceValidationPolicy } from "@pulumi/policy";
import { readPath } from "../props";
import { REMOTE_COMMAND } from "./types";

/** Connection fields that hold a login credential (the provider marks them secret, and stores them). */
const CREDENTIAL_FIELDS = ["privateKey", "privateKeyPassword", "password"] as const;

/**
 * The engine stores a command's whole `connection` in the state (encrypted with the stack's
 * secrets provider), in every checkpoint, history entry and backup. A deploy key or password there
 * can be read by whoever can decrypt the state: an approved preview, a leaked backup. The program
 * logs in through an SSH agent instead (components/config/ssh.ts), so no credential field is ever
 * set, on any stack. Unknown values (preview) count: whatever they become lands in the state.
 */
export const remoteCommandNoSshCredential: ResourceValidationPolicy = {
  name: "remote-command-no-ssh-credential",
  description:
    "No command:remote:Command carries an SSH private key, key passphrase or password in its connection (or its proxy): it would be stored in the state.",
  enforcementLevel: "mandatory",
  severity: "critical",
  validateResource: (args, reportViolation) => {
    if (args.type !== REMOTE_COMMAND) return;
    for (const base of [["connection"], ["connection", "proxy"]]) {
      for (const field of CREDENTIAL_FIELDS) {
        if (readPath(args.props, ...base, field) === undefined) continue;
        reportViolation(
          `command ${args.name}: ${[...base, field].join(".")} is set, so the credential is stored in the ` +
            `state, readable by whoever can decrypt it. Log in through an SSH agent instead (SSH_AUTH_SOCK ` +
            `in the environment of \`pulumi up\`; docs/RUNBOOK.md, Deploy key) and remove the credential ` +
            `from the program and the stack config.`,
        );
      }
    }
  },
};
