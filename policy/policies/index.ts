import type { Policies } from "@pulumi/policy";
import { commandTextNoSecretMaterial } from "./command-secret-material";
import { remoteCommandHostKeyPinned } from "./host-key";
import { rotationKeeperAge } from "./keeper-age";
import { generatedSecretStrength } from "./secret-strength";
import { secretsManagerProductionKms } from "./secrets-manager-kms";
import { commandTextNoStackSecret } from "./stack-secrets";
import { remoteCommandNoSshCredential } from "./ssh-credential";

export { commandTextNoSecretMaterial, remoteCommandHostKeyPinned, rotationKeeperAge, generatedSecretStrength };
export { secretsManagerProductionKms, commandTextNoStackSecret, remoteCommandNoSshCredential };

/** Every policy of the pack, in the order the CLI lists them. */
export const policies: Policies = [
  remoteCommandHostKeyPinned,
  remoteCommandNoSshCredential,
  commandTextNoSecretMaterial,
  commandTextNoStackSecret,
  generatedSecretStrength,
  secretsManagerProductionKms,
  rotationKeeperAge,
];
