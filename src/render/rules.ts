import { isWildcard } from "./validate.js";

/** Go regexp for a wildcard: exactly one label in place of `*`, dots escaped, anchored. */
export function wildcardRegexp(domain: string): string {
  const rest = domain.slice(2).replaceAll(".", "\\.");
  return `^[a-z0-9-]+\\.${rest}$`;
}

/** The Traefik v3 rule for a (validated) domain and path prefix. */
export function ruleFor(domain: string, pathPrefix: string): string {
  const host = isWildcard(domain) ? `HostRegexp(\`${wildcardRegexp(domain)}\`)` : `Host(\`${domain}\`)`;
  return pathPrefix === "/" ? host : `${host} && PathPrefix(\`${pathPrefix}\`)`;
}

const EXACT_HOST = 20_000;
const WILDCARD_HOST = 10_000;

/**
 * Explicit router priority: an exact host beats a wildcard for the same name, then a longer path prefix beats
 * a shorter one. Path prefixes are ≤ 1024 bytes, so the two bands never overlap, whatever the rule lengths.
 */
export function priorityFor(domain: string, pathPrefix: string): number {
  return (isWildcard(domain) ? WILDCARD_HOST : EXACT_HOST) + pathPrefix.length; // validated prefixes are ASCII
}

/** Whether a request host (lower-case, no port) is claimed by a route's domain. */
export function hostMatches(domain: string, host: string): boolean {
  if (!isWildcard(domain)) {
    return domain === host;
  }
  const suffix = domain.slice(1); // ".app.example.com"
  if (!host.endsWith(suffix)) {
    return false;
  }
  return /^[a-z0-9-]+$/.test(host.slice(0, host.length - suffix.length));
}

/** Picks the route Traefik would choose for host + path, by the same priorities the renderer emits. */
export function matchRoute<R extends { domain: string; pathPrefix: string }>(
  routes: readonly R[],
  host: string,
  path: string,
): R | undefined {
  let best: R | undefined;
  let bestPriority = -1;
  for (const r of routes) {
    if (!hostMatches(r.domain, host) || !path.startsWith(r.pathPrefix)) {
      continue;
    }
    const p = priorityFor(r.domain, r.pathPrefix);
    if (p > bestPriority) {
      best = r;
      bestPriority = p;
    }
  }
  return best;
}
