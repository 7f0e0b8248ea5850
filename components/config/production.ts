/**
 * Whether the production rules apply. They apply when the stack says so (`production: true`)
 * or when its name says so: a name whose parts (split at `-`, `_`, `.`) include prod,
 * production, prd or live, e.g. `prod`, `production`, `prod-eu`, `eu-prd`, `live`. The name
 * rule is deliberately broad (`pre-prod` counts): a stricter check on a staging stack costs a
 * pinned host key; a missed production stack costs DEBUG pages and unchecked servers.
 * `production: false` never switches the rules off for a production name.
 * No Pulumi import: the policy pack uses the name rule too.
 */

const PRODUCTION_WORDS = ["prod", "production", "prd", "live"];

export function isProductionStackName(stack: string): boolean {
  return stack
    .toLowerCase()
    .split(/[-_.]/)
    .some((part) => PRODUCTION_WORDS.includes(part));
}

export interface Production {
  production: boolean;
  /** Why, for messages: `production stack "prod"`, or `this stack (production: true)`. */
  because: string;
}

export function production(stack: string, explicit: boolean): Production {
  if (isProductionStackName(stack)) return { production: true, because: `production stack "${stack}"` };
  if (explicit) return { production: true, because: "this stack (production: true)" };
  return { production: false, because: `stack "${stack}"` };
}
