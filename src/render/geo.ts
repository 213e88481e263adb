import type { GeoExplanation, StoredGeo } from "./geo-config.js";
import { STABLE_TRACK } from "./split-config.js";
import { type ExtraRouter, inTrack, type TrafficSpec } from "./traffic-spec.js";
import type { ReplicaInput, Service } from "./types.js";

// Geographic routing: one router per region matching the country header, each to that region's healthy replicas,
// failing over in the configured order. Pure.
//
// Failover is decided here, from our own health state, and rendered as a plain loadBalancer over the first region
// in [region, ...failover[region]] that has a healthy replica — not as a Traefik `failover` service. Traefik v3.7.9
// (pkg/server/service/service.go getFailoverServiceHandler, pkg/server/service/loadbalancer/failover/failover.go)
// only switches to the fallback when the primary reports itself down through a StatusUpdater, which a loadBalancer
// does only with an active `healthCheck` (TRAEFIK_HEALTHCHECK, off by default), or, from 3.7, per request on
// `errors.status` (each request first tried on the primary and buffered for replay). A primary whose servers are
// all gone renders as the weight-0 placeholder, which has no health check, so Traefik would refuse the service or
// send everything to the empty primary (503). We already re-render on every health transition, so rendering the
// decision works on Traefik 3.6 with no extra setting, chains over any number of regions, and is what
// /routing/resolve explains (explainGeo below).

/**
 * Healthy, running `stable` replicas per region (replicas without a region are in none). `up` is already filtered
 * by render (healthy, running, allowed address, not draining); the check here keeps explainGeo right for callers
 * that pass every replica.
 */
function byRegion(up: readonly ReplicaInput[]): Map<string, ReplicaInput[]> {
  const out = new Map<string, ReplicaInput[]>();
  for (const r of inTrack(up, STABLE_TRACK)) {
    if (r.region == null || r.status !== "running" || r.healthStatus !== "healthy") {
      continue;
    }
    const list = out.get(r.region);
    if (list) {
      list.push(r);
    } else {
      out.set(r.region, [r]);
    }
  }
  return out;
}

/** The region itself, then its failover regions in order. */
export function failoverOrder(geo: StoredGeo, region: string): string[] {
  return [region, ...(geo.failover?.[region] ?? [])];
}

/** The first region in the failover order of `region` with a healthy replica, or undefined when none has one. */
function servingRegion(geo: StoredGeo, region: string, pools: ReadonlyMap<string, ReplicaInput[]>) {
  return failoverOrder(geo, region).find((r) => (pools.get(r)?.length ?? 0) > 0);
}

/** A region's service name: `<name>--region-<region>` (sorts right after `<name>`, see render.ts). */
export const regionServiceName = (name: string, region: string) => `${name}--region-${region}`;

/** A region's router suffix: the router is `<name>--geo-<region>` (src/render/routers.ts). */
export const regionRouterSuffix = (region: string) => `geo-${region}`;

/**
 * The rule fragment matching a region's countries. Traefik v3.7.9 pkg/muxer/http/matcher.go `headerRegexp`:
 * the header name goes through http.CanonicalHeaderKey (any case matches) and each value of the header is matched
 * on its own, so the anchored alternation matches a header holding exactly one of the codes. Case-sensitive, like
 * the codes CDNs send (upper-case): `(?i)` would also fold non-ASCII look-alikes (RE2 folds U+212A KELVIN SIGN to
 * `K`), which explainGeo could not mirror exactly. Header name and codes are validated (StoredGeo): letters, digits
 * and `-` only, nothing to escape.
 */
export function countryMatch(header: string, countries: readonly string[]): string {
  const codes = [...new Set(countries)].sort();
  return `HeaderRegexp(\`${header}\`, \`^(?:${codes.join("|")})$\`)`;
}

/** Adds a geo-routed route's services (base name first, then `<name>--…` in name order); returns its routers. */
export function geoServices(spec: TrafficSpec, geo: StoredGeo, services: Record<string, Service>): ExtraRouter[] {
  const pools = byRegion(spec.up);
  const poolOf = (region: string) => {
    const serving = servingRegion(geo, region, pools);
    return serving === undefined ? [] : (pools.get(serving) ?? []); // none anywhere: the weight-0 placeholder (503)
  };
  // Requests without the header, or with a country no region lists, stay on the base router.
  services[spec.name] = spec.lbFor(poolOf(geo.default));
  const extras: ExtraRouter[] = [];
  for (const region of Object.keys(geo.regions).sort()) {
    const countries = geo.regions[region] ?? [];
    if (countries.length === 0) {
      continue; // reached only as the default or through failover: no router of its own
    }
    const service = regionServiceName(spec.name, region);
    services[service] = spec.lbFor(poolOf(region));
    // Countries are disjoint across regions, so at most one region router matches: one rank for all of them.
    extras.push({ suffix: regionRouterSuffix(region), match: countryMatch(geo.header, countries), rank: 1, service });
  }
  return extras;
}

/**
 * The region a country header value maps to: the region listing it exactly. Go's net/textproto trims spaces and tabs
 * around header values before Traefik's matcher sees them, so they are ignored here too.
 */
function regionOf(geo: StoredGeo, country: string): string | undefined {
  const code = country.replace(/^[ \t]+|[ \t]+$/g, "");
  for (const region of Object.keys(geo.regions).sort()) {
    if (geo.regions[region]?.includes(code)) {
      return region;
    }
  }
  return undefined;
}

/** Which region serves a request from `country` (undefined: no header), and why (for /routing/resolve). */
export function explainGeo(geo: StoredGeo, country: string | undefined, up: readonly ReplicaInput[]): GeoExplanation {
  const region = country === undefined ? undefined : regionOf(geo, country);
  const mapped = region ?? geo.default;
  const why =
    country === undefined
      ? `no ${geo.header} header: the default region ${mapped}`
      : region === undefined
        ? `${geo.header} ${JSON.stringify(country)} is in no region: the default region ${mapped}`
        : `${geo.header} ${JSON.stringify(country)} maps to region ${mapped}`;
  const pools = byRegion(up);
  const served = servingRegion(geo, mapped, pools);
  const order = failoverOrder(geo, mapped);
  if (served === undefined) {
    return { mapped, routerRegion: region, served, reason: `${why}; no healthy replica in ${order.join(", ")}: 503` };
  }
  if (served === mapped) {
    return { mapped, routerRegion: region, served, reason: why };
  }
  const skipped = order.slice(0, order.indexOf(served));
  return {
    mapped,
    routerRegion: region,
    served,
    reason: `${why}; no healthy replica in ${skipped.join(", ")}: failed over to ${served}`,
  };
}

/** Per declared region: its healthy `stable` replicas and the region serving its requests now (GET …/geo). */
export function geoStatus(
  geo: StoredGeo,
  up: readonly ReplicaInput[],
): Record<string, { healthy_replicas: number; served_by: string | null }> {
  const pools = byRegion(up);
  const out: Record<string, { healthy_replicas: number; served_by: string | null }> = {};
  for (const region of Object.keys(geo.regions).sort()) {
    out[region] = {
      healthy_replicas: pools.get(region)?.length ?? 0,
      served_by: servingRegion(geo, region, pools) ?? null,
    };
  }
  return out;
}
