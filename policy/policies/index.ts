import type { Policies } from "@pulumi/policy";
import { commandTextNoSecretMaterial } from "./command-secret-material";
import { remoteCommandHostKeyPinned } from "./host-key";
import { rotationKeeperAge } from "./keeper-age";
import { generatedSecretStrength } from "./secret-strength";
import { secretsManagerProductionKms } from "./secrets-manager-kms";
import { commandTextNoStackSecret } from "./stack-secrets";

export { commandTextNoSecretMaterial, remoteCommandHostKeyPinned, rotationKeeperAge, generatedSecretStrength };
export { secretsManagerProductionKms, commandTextNoStackSecret };

/** Every policy of the pack, in the order the CLI lists them. */
export const policies: Policies = [
  remoteCommandHostKeyPinned,
  commandTextNoSecretMaterial,
  commandTextNoStackSecret,
  generatedSecretStrength,
  secretsManagerProductionKms,
  rotationKeeperAge,
];
