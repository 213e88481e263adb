import type { GeoExplanation, StoredGeo } from "./geo-config.js";
import type { ExtraRouter, TrafficSpec } from "./traffic-spec.js";
import type { ReplicaInput, Service } from "./types.js";

// Geographic routing: one router per region matching the country header, each to that region's healthy replicas,
// failing over in the configured order. Pure.

/** Adds a geo-routed route's services (base name first, then `<name>--…` in name order); returns its routers. */
export function geoServices(spec: TrafficSpec, geo: StoredGeo, services: Record<string, Service>): ExtraRouter[] {
  void geo;
  services[spec.name] = spec.lbFor(spec.up);
  return [];
}

/** Which region serves a request from `country` (undefined: no header), and why (for /routing/resolve). */
export function explainGeo(geo: StoredGeo, country: string | undefined, up: readonly ReplicaInput[]): GeoExplanation {
  void country;
  void up;
  return { mapped: geo.default, served: geo.default, reason: "geo routing is not rendered yet" };
}
