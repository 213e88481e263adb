import { z } from "zod";
import { TrackName } from "./split-config.js";

// A deployment's geographic routing as stored (deployment_traffic.geo); validated again by the renderer.

/** A region label (same form as deployment_locations.region). */
export const RegionName = TrackName;

export const StoredGeo = z.strictObject({
  /** Request header carrying the client's ISO 3166 alpha-2 country (e.g. `CF-IPCountry`). */
  header: z.string(),
  regions: z.record(RegionName, z.array(z.string())),
  failover: z.record(RegionName, z.array(RegionName)).optional(),
  default: RegionName,
});
export type StoredGeo = z.infer<typeof StoredGeo>;

/** Why /routing/resolve chose a region for a country (filled in by geo routing). */
export interface GeoExplanation {
  /** The region the country maps to (or the default). */
  mapped: string;
  /** The region whose replicas serve the request after failover; undefined when none has a healthy replica. */
  served: string | undefined;
  reason: string;
}
