// pms-secrets: rotate the pms-backend secrets, store them in AWS Secrets Manager
// and deliver them to every host. The program lives in components/; this file
// only turns its result into stack outputs.
import { deployPmsSecrets } from "./components/stack";

const pms = deployPmsSecrets();

export const secretArn = pms.secretArn;
export const secretVersionId = pms.secretVersionId;
/** Per host: address and the fingerprint of the env file it holds (no values). */
export const hosts = pms.hosts;
/** The rotation keepers in force. */
export const keepers = pms.keepers;
/** Which keys the env file has, by origin (names only). */
export const envKeys = pms.envKeys;
/** How SECRET_KEY rotations treat the previous key: graceful (fallbacks) or EMERGENCY. */
export const secretKeyRotation = pms.secretKeyRotation;
