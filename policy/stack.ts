/**
 * Which stack a policy is judging, and whether it is production.
 *
 * The Node.js policy SDK does not expose the stack name: `pulumi.getStack()` is empty inside the
 * analyzer process (it only has the settings of a program run), and the SDK's `configureStack`
 * handler keeps only the stack TAGS (`args.stackTags`), although the engine sends the name too.
 * Every URN, however, carries it: `urn:pulumi:<stack>::<project>::<type>::<name>`. So the pack
 * reads the stack from the URN of the resource being checked, and asks policy config
 * (`productionStacks`, set with `--policy-pack-config policy/config.json`) which stacks are
 * production; without that list, the program's own name rule decides (components/config/production.ts:
 * prod, production, prd, live, also as a part such as prod-eu), so program and pack agree.
 * No per-stack setup is needed, and a stack cannot opt out by forgetting a tag.
 */
import { isProductionStackName } from "../components/config/production";

/** The stack name inside a URN, or undefined when `urn` is not a Pulumi URN. */
export function stackOfUrn(urn: string): string | undefined {
  const match = /^urn:pulumi:([^:]+)::[^:]+::/.exec(urn);
  return match ? match[1] : undefined;
}

export interface ProductionConfig {
  /** Stack names treated as production. Default: the program's name rule. */
  productionStacks?: string[];
}

/** JSON schema fragment shared by every policy that only applies to production stacks. */
export const productionStacksSchema = {
  type: "array",
  items: { type: "string" },
  description:
    "Stack names treated as production (compared with the stack part of each resource URN). Default: names with a part prod, production, prd or live.",
} as const;

export function isProductionUrn(urn: string, config: ProductionConfig): boolean {
  const stack = stackOfUrn(urn);
  if (stack === undefined) return false;
  const configured = config.productionStacks;
  return Array.isArray(configured) && configured.length > 0 ? configured.includes(stack) : isProductionStackName(stack);
}
