/**
 * Values that stand in for the operator's own: the shipped stack files mark them `REPLACE...`,
 * and documentation names (RFC 2606 / RFC 6761) and documentation networks (RFC 5737, RFC 3849)
 * can never be a real server. Sending a rollout there would hand the env file to someone else
 * (example.com resolves to IANA's servers), so they are refused before anything runs.
 * Private addresses (10.0.0.5, 192.168.1.20) are real and accepted.
 */

/**
 * Markers at the start of the value or of one of its parts (`alias/REPLACE-...`), in upper case
 * as the shipped files write them, or a whole `<...>` value. Kept that narrow because secrets
 * are checked too, and a real password may well contain `<x>` or "replace".
 */
const PLACEHOLDER_MARKERS = [/(?:^|[/:@.])(?:REPLACE|CHANGEME|CHANGE_ME|TODO|FIXME)/, /^<[^>]*>$/];

/** Why `value` is a placeholder the operator has not filled in, or undefined. Never echoes the value. */
export function placeholderProblem(value: string): string | undefined {
  return PLACEHOLDER_MARKERS.some((p) => p.test(value)) ? "is still a placeholder" : undefined;
}

const DOCUMENTATION_NAMES = /(?:^|\.)(?:example\.(?:com|net|org)|example|invalid|test)\.?$/i;
const DOCUMENTATION_NETWORKS = /^(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}$|^2001:db8:/i;

/** Why the host name `name` is a documentation example rather than a real host, or undefined. */
export function documentationHostProblem(name: string): string | undefined {
  if (DOCUMENTATION_NAMES.test(name)) return `${name} is a documentation name (reserved, never a real server)`;
  if (DOCUMENTATION_NETWORKS.test(name)) return `${name} is in a documentation network (never a real server)`;
  return undefined;
}
