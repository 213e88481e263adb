import { geoServices } from "./geo.js";
import { splitServices } from "./split.js";
import { STABLE_TRACK } from "./split-config.js";
import { type ExtraRouter, inTrack, type TrafficSpec } from "./traffic-spec.js";
import type { Service } from "./types.js";

// Traffic management in the rendered config: which services a route's router points at (one pool, a weighted
// split over tracks, a mirror, geo regions with failover) and the extra routers that pick a track or a region by
// request. Pure, like the rest of render/.

/**
 * Adds the services of a route whose deployment has a split or geo routing to `services`, in name order (the base
 * name first, then `<name>--…` names, which sort right after it), and returns the extra routers. Without either,
 * render.ts serves one pool of `stable` replicas under the base name itself.
 */
export function addTrafficServices(spec: TrafficSpec, services: Record<string, Service>): ExtraRouter[] {
  if (spec.traffic?.geo) {
    return geoServices(spec, spec.traffic.geo, services); // geo and split are exclusive (the API refuses both)
  }
  if (spec.traffic?.split) {
    return splitServices(spec, spec.traffic.split, services); // src/render/split.ts
  }
  services[spec.name] = spec.lbFor(inTrack(spec.up, STABLE_TRACK));
  return [];
}
