// pms-secrets: rotate the pms-backend secrets, store them in AWS Secrets Manager
// and deliver them to every host. The program lives in components/; this file
// only orders its steps and turns its result into stack outputs.
//
// An async program (the Pulumi runtime awaits it): `pulumi up` first checks that every host
// answers SSH and that SSH_AUTH_SOCK is usable (components/preflight.ts), before any resource.
//
// Pulumi runs this file compiled, as bin/index.js (loaded by main.js, Pulumi.yaml `main`; `npm run build:program`),
// and the build refuses to run when its sources changed since (components/program-build.ts).
import * as pulumi from "@pulumi/pulumi";
import { preflight } from "./components/preflight";
import { assertCurrentBuild } from "./components/program-build";
import { deployPmsSecrets, loadStackConfig } from "./components/stack";

export = async () => {
  assertCurrentBuild((message) => new pulumi.RunError(message));
  const config = loadStackConfig();
  await preflight(config.settings);
  const pms = deployPmsSecrets(config);
  return {
    secretArn: pms.secretArn,
    secretVersionId: pms.secretVersionId,
    /** Per host: address and the fingerprint of the env file it holds (no values). */
    hosts: pms.hosts,
    /** The rotation keepers in force. */
    keepers: pms.keepers,
    /** Which keys the env file has, by origin (names only). */
    envKeys: pms.envKeys,
    /** How SECRET_KEY rotations treat the previous key: graceful (fallbacks) or EMERGENCY. */
    secretKeyRotation: pms.secretKeyRotation,
    /** Emergency only: per host, when it stopped accepting the old SECRET_KEY, and the window (no key). */
    ...(pms.secretKeyEmergency ? { secretKeyEmergency: pms.secretKeyEmergency } : {}),
  };
};
