/**
 * The pms-secrets CrossGuard policy pack. Policies live in ./policies (one module each, exported
 * for the unit tests); this file only registers them.
 *
 *   pulumi preview --policy-pack policy --policy-pack-config policy/config.json
 */
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("pms-secrets", {
  description:
    "Guards the pms-secrets stacks: host key pinning, no secrets in command text, secret strength, KMS on prod, keeper age.",
  enforcementLevel: "mandatory",
  policies,
});
