import type { ResourceValidationPolicy } from "@pulumi/policy";
import { readPath, readString, UNKNOWN } from "../props";
import { isProductionUrn, productionStacksSchema, stackOfUrn, type ProductionConfig } from "../stack";
import { SM_SECRET } from "./types";

const DEFAULT_MIN_RECOVERY_WINDOW_DAYS = 7;

/** True for the AWS managed key of Secrets Manager, by alias or alias ARN. */
function isAwsManagedSecretsManagerKey(kmsKeyId: string): boolean {
  return kmsKeyId === "alias/aws/secretsmanager" || /:alias\/aws\/secretsmanager$/.test(kmsKeyId);
}

interface KmsConfig extends ProductionConfig {
  minRecoveryWindowDays?: number;
}

/**
 * On production the secret is encrypted with a customer-managed KMS key (whose key policy says who
 * can decrypt, and which can be audited and disabled), and a deletion can be undone for at least a
 * week (`recoveryWindowInDays: 0` deletes at once, with no way back).
 */
export const secretsManagerProductionKms: ResourceValidationPolicy = {
  name: "secrets-manager-production-kms",
  description:
    "On production, the Secrets Manager secret uses a customer-managed KMS key and a recovery window of at least 7 days.",
  enforcementLevel: "mandatory",
  severity: "high",
  configSchema: {
    properties: {
      productionStacks: productionStacksSchema,
      minRecoveryWindowDays: { type: "integer", minimum: 7, maximum: 30, default: DEFAULT_MIN_RECOVERY_WINDOW_DAYS },
    },
  },
  validateResource: (args, reportViolation) => {
    if (args.type !== SM_SECRET) return;
    const config = args.getConfig<KmsConfig>();
    // The program tags the secret of every production stack, including one named otherwise (`production: true`).
    const taggedProduction = readString(args.props, "tags", "Production") === "true";
    if (!taggedProduction && !isProductionUrn(args.urn, config)) {
      args.notApplicable(`stack "${stackOfUrn(args.urn) ?? "?"}" is not a production stack`);
    }
    const stack = stackOfUrn(args.urn);

    const kmsKeyId = readString(args.props, "kmsKeyId");
    if (kmsKeyId !== UNKNOWN) {
      if (kmsKeyId === undefined || kmsKeyId.trim() === "") {
        reportViolation(
          `secret ${args.name} on production stack "${stack}" has no kmsKeyId, so it is encrypted with the AWS ` +
            `managed key aws/secretsmanager. Set kmsKeyId in the stack config to a customer-managed key (ARN or alias/...).`,
        );
      } else if (isAwsManagedSecretsManagerKey(kmsKeyId)) {
        reportViolation(
          `secret ${args.name} on production stack "${stack}" uses the AWS managed key (${kmsKeyId}). Set kmsKeyId ` +
            `to a customer-managed key.`,
        );
      }
    }

    const minimum =
      typeof config.minRecoveryWindowDays === "number"
        ? config.minRecoveryWindowDays
        : DEFAULT_MIN_RECOVERY_WINDOW_DAYS;
    const window = readPath(args.props, "recoveryWindowInDays");
    // Not set: AWS applies its default of 30 days.
    if (window === UNKNOWN || window === undefined) return;
    if (window === 0) {
      reportViolation(
        `secret ${args.name} on production stack "${stack}" has recoveryWindowInDays 0: deleting it is immediate and ` +
          `cannot be undone. Set recoveryWindowInDays between ${minimum} and 30.`,
      );
    } else if (typeof window !== "number" || window < minimum) {
      reportViolation(
        `secret ${args.name} on production stack "${stack}" has recoveryWindowInDays ${JSON.stringify(window)}; production ` +
          `needs at least ${minimum} days.`,
      );
    }
  },
};
