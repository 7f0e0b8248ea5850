/** `secretName`, `kmsKeyId`, `recoveryWindowInDays`: where the env document is stored in AWS. */
import { placeholderProblem } from "./placeholders";
import type { Problems } from "./problems";
import { wholeNumber } from "./read";

export interface StoreSettings {
  secretName: string;
  kmsKeyId?: string;
  recoveryWindowInDays: number;
}

export interface StoreInput {
  secretName?: string;
  kmsKeyId?: string;
  recoveryWindowInDays?: string;
}

/** `recoveryWindowInDays`: its range, and its default on production and elsewhere. */
export const RECOVERY_WINDOW = { min: 7, max: 30, productionDefault: 30, otherDefault: 7 } as const;

export function parseStore(problems: Problems, input: StoreInput, stack: string, production: boolean): StoreSettings {
  const secretName = input.secretName || `pms-backend/${stack}`;
  if (!/^[A-Za-z0-9/_+=.@-]{1,512}$/.test(secretName)) {
    problems.add(
      "secretName",
      `${JSON.stringify(secretName)} is not a valid Secrets Manager name`,
      "use letters, digits and /_+=.@- (default pms-backend/<stack>)",
    );
  }
  const kmsKeyId = input.kmsKeyId || undefined;
  if (kmsKeyId !== undefined && (placeholderProblem(kmsKeyId) || /\s/.test(kmsKeyId))) {
    problems.add(
      "kmsKeyId",
      placeholderProblem(kmsKeyId) ?? "contains whitespace",
      "set the id, ARN or alias of your customer-managed KMS key, e.g. alias/pms-secrets-prod (`aws kms list-aliases`)",
    );
  }
  const recoveryWindowInDays = wholeNumber(problems, "recoveryWindowInDays", input.recoveryWindowInDays, {
    min: RECOVERY_WINDOW.min,
    max: RECOVERY_WINDOW.max,
    default: production ? RECOVERY_WINDOW.productionDefault : RECOVERY_WINDOW.otherDefault,
    unit: "the days a deleted secret stays recoverable (30 is the default on production, 7 elsewhere)",
  });
  return { secretName, kmsKeyId, recoveryWindowInDays };
}
