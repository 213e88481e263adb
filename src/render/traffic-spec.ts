import { STABLE_TRACK } from "./split-config.js";
import type { DeploymentTraffic } from "./traffic-config.js";
import type { RenderSettings, ReplicaInput, RouteInput, Service } from "./types.js";

// The contract between render.ts and the traffic-management renderers (traffic.ts, geo.ts): what a route's
// services are built from and the extra routers they ask for.

/** What a route's services are built from. */
export interface TrafficSpec {
  /** `routeName(route)`: the base router's and the base service's name. */
  readonly name: string;
  readonly route: RouteInput;
  /** The deployment's healthy, routable replicas (any track, any region). */
  readonly up: readonly ReplicaInput[];
  readonly traffic: DeploymentTraffic | undefined;
  /** A loadBalancer service over these replicas (the weight-0 placeholder when there are none). */
  readonly lbFor: (replicas: readonly ReplicaInput[]) => Service;
  readonly settings: RenderSettings;
}

/** A router beyond the route's base router: same entry point, TLS and middlewares, a narrower rule. */
export interface ExtraRouter {
  /** Appended to the base name: `<name>--<suffix>`. */
  readonly suffix: string;
  /** Rule fragment ANDed with the base rule (already validated and escaped). */
  readonly match: string;
  /** 1…7 above the base router's priority (see rules.ts); a higher rank is tried first. */
  readonly rank: number;
  readonly service: string;
}

/** Replicas of one track (undefined track = `stable`); the same array when all are in it (the common case). */
export function inTrack(up: readonly ReplicaInput[], track: string): readonly ReplicaInput[] {
  for (const r of up) {
    if ((r.track ?? STABLE_TRACK) !== track) {
      return up.filter((x) => (x.track ?? STABLE_TRACK) === track);
    }
  }
  return up;
}
