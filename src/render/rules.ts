import { isWildcard, RESERVED_ESCAPES } from "./validate.js";

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
/** Priority steps per path-prefix byte: room for a route's extra routers (A/B rules, ranks 1…7) in between. */
export const PRIORITY_STEP = 8;

/**
 * Explicit router priority: an exact host beats a wildcard for the same name, then a longer path prefix beats
 * a shorter one. `band + 8 × len(prefix)`: a route's extra routers sit at `+ rank` (1…7, src/render/traffic-spec.ts),
 * so they outrank their own base router but never tie with or outrank a route with a longer prefix. Path prefixes
 * are ≤ 1024 bytes (8192 + 7 < 10000), so the two bands never overlap, whatever the rule lengths.
 */
export function priorityFor(domain: string, pathPrefix: string, rank = 0): number {
  // validated prefixes are ASCII
  return (isWildcard(domain) ? WILDCARD_HOST : EXACT_HOST) + pathPrefix.length * PRIORITY_STEP + rank;
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

/**
 * The path Traefik routes on for a request path: every %XX decoded except upper-case reserved escapes (traefik
 * v3.7.9 pkg/muxer/http/mux.go `withRoutingPath`). Undefined for a malformed escape (Traefik answers 400).
 */
export function routingPath(requestPath: string): string | undefined {
  if (!requestPath.includes("%")) {
    return requestPath;
  }
  const bytes: number[] = [];
  const raw = Buffer.from(requestPath, "utf8");
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    if (b !== 0x25) {
      bytes.push(b);
      continue;
    }
    const esc = raw.subarray(i, i + 3).toString("latin1");
    if (!/^%[0-9A-Fa-f]{2}$/.test(esc)) {
      return undefined;
    }
    if (RESERVED_ESCAPES.has(esc)) {
      bytes.push(...Buffer.from(esc, "latin1"));
    } else {
      bytes.push(Number.parseInt(esc.slice(1), 16));
    }
    i += 2;
  }
  return Buffer.from(bytes).toString("utf8");
}
