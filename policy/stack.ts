/**
 * Which stack a policy is judging, and whether it is production.
 *
 * The Node.js policy SDK does not expose the stack name: `pulumi.getStack()` is empty inside the
 * analyzer process (it only has the settings of a program run), and the SDK's `configureStack`
 * handler keeps only the stack TAGS (`args.stackTags`), although the engine sends the name too.
 * Every URN, however, carries it: `urn:pulumi:<stack>::<project>::<type>::<name>`. So the pack
 * reads the stack from the URN of the resource being checked, and asks policy config
 * (`productionStacks`, default `["prod"]`, set with `--policy-pack-config policy/config.json`)
 * which stacks are production. No per-stack setup is needed, and a stack cannot opt out by
 * forgetting a tag.
 */
export const DEFAULT_PRODUCTION_STACKS: readonly string[] = ["prod"];

/** The stack name inside a URN, or undefined when `urn` is not a Pulumi URN. */
export function stackOfUrn(urn: string): string | undefined {
  const match = /^urn:pulumi:([^:]+)::[^:]+::/.exec(urn);
  return match ? match[1] : undefined;
}

export interface ProductionConfig {
  /** Stack names treated as production. Default ["prod"]. */
  productionStacks?: string[];
}

/** JSON schema fragment shared by every policy that only applies to production stacks. */
export const productionStacksSchema = {
  type: "array",
  items: { type: "string" },
  default: [...DEFAULT_PRODUCTION_STACKS],
  description: "Stack names treated as production (compared with the stack part of each resource URN).",
} as const;

export function productionStacks(config: ProductionConfig): readonly string[] {
  const configured = config.productionStacks;
  return Array.isArray(configured) && configured.length > 0 ? configured : DEFAULT_PRODUCTION_STACKS;
}

export function isProductionUrn(urn: string, config: ProductionConfig): boolean {
  const stack = stackOfUrn(urn);
  return stack !== undefined && productionStacks(config).includes(stack);
}
