import { routeName } from "./names.js";
import { hostMatches, matchRoute } from "./rules.js";
import type { RenderWarning, ReplicaInput, RouteInput, TraefikDocument } from "./types.js";
import { isWildcard } from "./validate.js";

/** One side of a preview: the rows and what render() made of them. */
export interface PreviewSide {
  routes: readonly RouteInput[];
  replicas: readonly ReplicaInput[];
  config: TraefikDocument;
  renderWarnings: readonly RenderWarning[];
}

export type PreviewWarningCode =
  | "LAST_HEALTHY_REPLICA"
  | "ROUTES_UNREACHABLE"
  | "HOST_MOVES"
  | "WILDCARD_SHADOWED"
  | "WILDCARD_SHADOWS_NOTHING"
  | "ROW_SKIPPED";

/** A consequence a human must read before applying; `code` is stable, the other members depend on it. */
export interface PreviewWarning {
  code: PreviewWarningCode;
  message: string;
  [detail: string]: unknown;
}

interface Served {
  id: string;
  deploymentId: string;
  domain: string;
  pathPrefix: string;
}

/**
 * What a change does to traffic that a config diff does not say plainly: the last healthy replica of a routed
 * deployment gone, host+path pairs that stop matching any route (Traefik answers 404), hosts served by another
 * deployment, wildcards newly shadowed by an exact host (or left serving none of the known hosts), and rows the
 * renderer newly skips. Pure; grouped by code in a fixed order, each group sorted by its subject.
 */
export function previewWarnings(before: PreviewSide, after: PreviewSide): PreviewWarning[] {
  const a = servedRoutes(before);
  const b = servedRoutes(after);
  return [
    ...lastHealthyReplica(before, after, b),
    ...unreachable(a, b),
    ...hostMoves(a, b),
    ...shadowed(a, b),
    ...shadowsNothing(a, b),
    ...skipped(before, after),
  ];
}

/** Routes that made it into the config (render skips invalid rows; they route nothing). */
function servedRoutes(side: PreviewSide): Served[] {
  const routers = side.config.http?.routers ?? {};
  return side.routes
    .filter((r) => Object.hasOwn(routers, routeName(r)))
    .map(({ id, deploymentId, domain, pathPrefix }) => ({ id, deploymentId, domain, pathPrefix }))
    .sort((x, y) => cmp(x.id, y.id));
}

function healthyDeployments(replicas: readonly ReplicaInput[]): Set<string> {
  return new Set(
    replicas.filter((r) => r.status === "running" && r.healthStatus === "healthy").map((r) => r.deploymentId),
  );
}

function lastHealthyReplica(before: PreviewSide, after: PreviewSide, routed: readonly Served[]): PreviewWarning[] {
  const had = healthyDeployments(before.replicas);
  const has = healthyDeployments(after.replicas);
  const stillRouted = new Set(routed.map((r) => r.deploymentId));
  return [...had]
    .filter((d) => !has.has(d) && stillRouted.has(d)) // a deleted deployment is reported as unreachable routes
    .sort(cmp)
    .map((d) => ({
      code: "LAST_HEALTHY_REPLICA",
      message: `removes the last healthy replica of ${d}: its routes answer 503 until a replica passes its checks`,
      deployment_id: d,
    }));
}

/** A request host for a route's domain: the domain, or for a wildcard a label no known exact route claims. */
function probeHost(domain: string, known: ReadonlySet<string>): string {
  if (!isWildcard(domain)) {
    return domain;
  }
  const rest = domain.slice(2);
  let label = "x";
  for (let i = 0; known.has(`${label}.${rest}`); i++) {
    label = `x${i}`;
  }
  return `${label}.${rest}`;
}

interface Probe {
  host: string;
  path: string;
  /** How a human names it: the domain (`*.a.com` for a wildcard's stand-in host). */
  shown: string;
}

function probes(a: readonly Served[], b: readonly Served[]): Probe[] {
  const known = new Set([...a, ...b].map((r) => r.domain).filter((d) => !isWildcard(d)));
  const seen = new Map<string, Probe>();
  for (const r of [...a, ...b]) {
    const key = `${r.domain} ${r.pathPrefix}`;
    if (!seen.has(key)) {
      seen.set(key, { host: probeHost(r.domain, known), path: r.pathPrefix, shown: r.domain });
    }
  }
  return [...seen.entries()].sort((x, y) => cmp(x[0], y[0])).map(([, p]) => p);
}

const where = (p: { shown: string; path: string }) => (p.path === "/" ? p.shown : `${p.shown}${p.path}`);

function unreachable(a: readonly Served[], b: readonly Served[]): PreviewWarning[] {
  const lost = probes(a, b).flatMap((p) => {
    const was = matchRoute(a, p.host, p.path);
    return was && !matchRoute(b, p.host, p.path)
      ? [{ host: p.shown, path: p.path, deployment_id: was.deploymentId }]
      : [];
  });
  if (lost.length === 0) {
    return [];
  }
  const n = lost.length;
  return [
    {
      code: "ROUTES_UNREACHABLE",
      message: `${n} route${n === 1 ? "" : "s"} become${n === 1 ? "s" : ""} unreachable (404): ${lost.map((l) => where({ shown: l.host, path: l.path })).join(", ")}`,
      count: n,
      routes: lost,
    },
  ];
}

function hostMoves(a: readonly Served[], b: readonly Served[]): PreviewWarning[] {
  return probes(a, b).flatMap((p): PreviewWarning[] => {
    const was = matchRoute(a, p.host, p.path);
    const now = matchRoute(b, p.host, p.path);
    if (!was || !now || was.deploymentId === now.deploymentId) {
      return [];
    }
    return [
      {
        code: "HOST_MOVES",
        message: `${where(p)} now resolves to ${now.deploymentId} instead of ${was.deploymentId}`,
        host: p.shown,
        path: p.path,
        from_deployment_id: was.deploymentId,
        to_deployment_id: now.deploymentId,
      },
    ];
  });
}

/** (exact route, wildcard) pairs where the exact route takes requests the wildcard would otherwise serve. */
function shadowPairs(routes: readonly Served[]): Map<string, { exact: Served; wildcard: Served }> {
  const out = new Map<string, { exact: Served; wildcard: Served }>();
  const wildcards = routes.filter((r) => isWildcard(r.domain));
  for (const exact of routes) {
    if (isWildcard(exact.domain)) {
      continue;
    }
    for (const w of wildcards) {
      if (hostMatches(w.domain, exact.domain) && exact.pathPrefix.startsWith(w.pathPrefix)) {
        out.set(`${exact.domain} ${exact.pathPrefix} ${w.domain} ${w.pathPrefix}`, { exact, wildcard: w });
      }
    }
  }
  return out;
}

function shadowed(a: readonly Served[], b: readonly Served[]): PreviewWarning[] {
  const was = shadowPairs(a);
  return [...shadowPairs(b).entries()]
    .filter(([key]) => !was.has(key))
    .sort((x, y) => cmp(x[0], y[0]))
    .map(([, { exact, wildcard }]) => ({
      code: "WILDCARD_SHADOWED",
      message: `${where({ shown: exact.domain, path: exact.pathPrefix })} is served by its exact route (${exact.deploymentId}), not by the wildcard ${wildcard.domain} (${wildcard.deploymentId})`,
      host: exact.domain,
      path: exact.pathPrefix,
      wildcard: wildcard.domain,
      deployment_id: exact.deploymentId,
      wildcard_deployment_id: wildcard.deploymentId,
    }));
}

/** Known hosts (exact route domains on either side) a wildcard route serves on one side. */
function servedByWildcard(routes: readonly Served[], wildcard: string, known: readonly string[]): string[] {
  return known.filter((h) => {
    const m = matchRoute(routes, h, "/");
    return m !== undefined && m.domain === wildcard;
  });
}

function shadowsNothing(a: readonly Served[], b: readonly Served[]): PreviewWarning[] {
  const known = [...new Set([...a, ...b].map((r) => r.domain).filter((d) => !isWildcard(d)))].sort(cmp);
  const wildcards = [...new Set(b.map((r) => r.domain).filter(isWildcard))].sort(cmp);
  return wildcards.flatMap((w): PreviewWarning[] => {
    const under = known.filter((h) => hostMatches(w, h));
    const before = servedByWildcard(a, w, under);
    if (before.length === 0 || servedByWildcard(b, w, under).length > 0) {
      return [];
    }
    return [
      {
        code: "WILDCARD_SHADOWS_NOTHING",
        message: `${w} now shadows nothing: every known host under it (${under.join(", ")}) has its own route; it only catches hosts nobody declared`,
        wildcard: w,
        hosts: under,
      },
    ];
  });
}

function skipped(before: PreviewSide, after: PreviewSide): PreviewWarning[] {
  const key = (w: RenderWarning) => `${w.kind} ${w.id} ${w.reason}`;
  const was = new Set(before.renderWarnings.map(key));
  return after.renderWarnings
    .filter((w) => !was.has(key(w)))
    .map((w) => ({
      code: "ROW_SKIPPED",
      message:
        w.kind === "middleware"
          ? `${w.id}: a middleware setting is not rendered: ${w.reason}`
          : `${w.kind} ${w.id} would not be rendered: ${w.reason}`,
      kind: w.kind,
      id: w.id,
      reason: w.reason,
    }));
}

function cmp(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
