import { MAX_SPLIT_RULES, type SplitMatch, type StoredSplit, type StoredSticky } from "./split-config.js";
import { type ExtraRouter, inTrack, type TrafficSpec } from "./traffic-spec.js";
import type { ReplicaInput, RouteInput, Service, StickyCookie, WeightedService } from "./types.js";

// A canary / A-B split as Traefik services and routers (field names from traefik v3.7.9
// pkg/config/dynamic/http_config.go: WeightedRoundRobin{services, sticky, healthCheck}, WRRService{name, weight},
// Sticky{cookie}, Cookie{name, secure, httpOnly, sameSite}, Mirroring{service, mirrors, maxBodySize},
// MirrorService{name, percent}). Pure.
//
//   <name>                weighted over the tracks with a healthy replica (or, with a mirror, a `mirroring` service
//                         over `<name>--main`, which is then that weighted service)
//   <name>--main          only with a mirror
//   <name>--track-<t>     one loadBalancer per track in use (weighted child, A/B rule target, mirror target)
//   routers <name>--ab-<i> one per A/B rule whose track has a healthy replica, ranked above the base router

/**
 * Requests whose body is bigger than this are not mirrored (Traefik buffers a mirrored request's body in memory to
 * replay it; its default, -1, buffers any size: traefik v3.7.9 pkg/server/service/loadbalancer/mirror/mirror.go).
 */
export const MIRROR_MAX_BODY_BYTES = 1024 * 1024;

/** `<name>--track-<track>`: the loadBalancer of one track's healthy replicas. */
export const trackServiceName = (name: string, track: string) => `${name}--track-${track}`;
/** `<name>--main`: with a mirror, the service the mirroring one sends the real traffic to. */
export const mainServiceName = (name: string) => `${name}--main`;
/** `--ab-<i>`: the suffix of the router of A/B rule i. */
export const abSuffix = (i: number) => `ab-${i}`;
/** Rank of A/B rule i above the base router: earlier rules are tried first (5, 4, …, 1). */
export const abRank = (i: number) => MAX_SPLIT_RULES - i;

/** One track's share of the weighted traffic, given current health. */
export interface TrackShare {
  track: string;
  weight: number;
  /** Of the weighted (non-A/B) traffic, rounded to 0.1. */
  percent: number;
}

/** Tracks that get a weighted share: weight > 0 and at least one healthy replica; in track name order. */
export function effectiveWeights(split: StoredSplit, up: readonly ReplicaInput[]): TrackShare[] {
  const live = Object.keys(split.weights)
    .sort()
    .filter((t) => (split.weights[t] ?? 0) > 0 && inTrack(up, t).length > 0);
  const total = live.reduce((sum, t) => sum + (split.weights[t] ?? 0), 0);
  return live.map((track) => {
    const weight = split.weights[track] ?? 0;
    return { track, weight, percent: Math.round((weight / total) * 1000) / 10 };
  });
}

/** Escapes a (validated: `[A-Za-z0-9_.~-]`) string for a Go regexp. */
const reEscape = (s: string) => s.replace(/[.\\^$|?*+()[\]{}]/g, "\\$&");

/** The rule fragment of an A/B match (its parts are validated by SplitMatch's character sets). */
export function matcherFor(m: SplitMatch): string {
  if (m.header !== undefined) {
    return `Header(\`${m.header}\`, \`${m.value}\`)`; // pkg/muxer/http/matcher.go header(): one value equals
  }
  if (m.cookie !== undefined) {
    // Anchored on the cookie name: `xab=b` and `ab=bc` do not match `ab=b`.
    return `HeaderRegexp(\`Cookie\`, \`(?:^|;\\s*)${reEscape(m.cookie)}=${reEscape(m.value)}(?:;|$)\`)`;
  }
  // Two arguments: Query(k) alone matches only an empty value (matcher.go query()).
  return `Query(\`${m.query}\`, \`${m.value}\`)`;
}

function stickyCookie(sticky: StoredSticky, route: RouteInput): StickyCookie {
  return {
    httpOnly: sticky.http_only ?? true,
    ...(sticky.cookie_name ? { name: sticky.cookie_name } : {}),
    sameSite: sticky.same_site ?? "lax",
    secure: sticky.secure ?? route.sslEnabled,
  };
}

/**
 * Adds a split route's services (base name first, then `<name>--…` in name order) and returns its A/B routers.
 * A track without a healthy replica is left out everywhere: no weight-0 child, no empty service.
 */
export function splitServices(spec: TrafficSpec, split: StoredSplit, services: Record<string, Service>): ExtraRouter[] {
  const { name } = spec;
  const pools = new Map<string, Service>(); // track → its loadBalancer, only for tracks with healthy replicas
  const pool = (track: string): Service | undefined => {
    if (!pools.has(track)) {
      const replicas = inTrack(spec.up, track);
      if (replicas.length > 0) {
        pools.set(track, spec.lbFor(replicas));
      }
    }
    return pools.get(track);
  };

  const shares = effectiveWeights(split, spec.up);
  for (const s of shares) {
    pool(s.track);
  }
  let main: Service;
  if (shares.length === 0) {
    main = spec.lbFor([]); // every weighted track is empty: the weight-0 placeholder, Traefik answers 503
  } else {
    const children = shares.map((s) => ({ name: trackServiceName(name, s.track), weight: s.weight }));
    // `healthCheck: {}` makes the weighted service skip a child Traefik's own checks report down; Traefik refuses it
    // unless every child can report (service.go getWRRServiceHandler: "child service … not a StatusUpdater").
    const healthy =
      spec.settings.traefikHealthCheck !== undefined &&
      shares.every((s) => pools.get(s.track)?.loadBalancer?.healthCheck !== undefined);
    const weighted: WeightedService = {
      ...(healthy ? { healthCheck: {} } : {}),
      services: children,
      ...(split.sticky ? { sticky: { cookie: stickyCookie(split.sticky, spec.route) } } : {}),
    };
    main = { weighted };
  }

  const mirror = split.mirror && pool(split.mirror.track) ? split.mirror : undefined;
  const extras: ExtraRouter[] = [];
  for (const [i, rule] of (split.rules ?? []).entries()) {
    if (pool(rule.track)) {
      // A rule whose track has no healthy replica has no router: its requests fall to the weighted base.
      extras.push({
        suffix: abSuffix(i),
        match: matcherFor(rule.match),
        rank: abRank(i),
        service: trackServiceName(name, rule.track),
      });
    }
  }

  if (mirror) {
    services[name] = {
      mirroring: {
        maxBodySize: MIRROR_MAX_BODY_BYTES,
        mirrors: [{ name: trackServiceName(name, mirror.track), percent: mirror.percent }],
        service: mainServiceName(name),
      },
    };
    services[mainServiceName(name)] = main; // "--main" < "--track-"
  } else {
    services[name] = main;
  }
  for (const track of [...pools.keys()].sort()) {
    services[trackServiceName(name, track)] = pools.get(track) as Service;
  }
  return extras;
}

/** What /routing/resolve knows of a request beyond host and path. */
export interface RequestFacts {
  /** Header values by lower-case name (each occurrence one value, as Go's `req.Header[key]`). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Query parameters as Go's `req.URL.Query()` decodes them. */
  readonly query: ReadonlyMap<string, readonly string[]>;
}

/** Which router, service and track a request to a split route takes, and why. */
export interface SplitExplanation {
  /** `rule`: an A/B rule matched (its router); `weighted`: the base router's weighted pick; `none`: 503. */
  readonly via: "rule" | "weighted" | "none";
  /** Suffix of the A/B router (`ab-<i>`), when a rule matched. */
  readonly suffix?: string;
  readonly rank: number;
  /** The service the router names (`<name>`, or `<name>--track-<t>` for a rule). */
  readonly service: string;
  /** Index of the matching rule. */
  readonly ruleIndex?: number;
  /** The rule fragment ANDed with the route's rule. */
  readonly match?: string;
  /** The track a rule sends the request to (a weighted pick has none until Traefik picks). */
  readonly track?: string;
  readonly shares: TrackShare[];
  readonly mirror?: { track: string; percent: number; maxBodyBytes: number };
  readonly reason: string;
}

/** Whether a request matches an A/B rule, exactly as its rendered matcher would (see matcherFor). */
export function requestMatches(m: SplitMatch, req: RequestFacts): boolean {
  if (m.header !== undefined) {
    return (req.headers.get(m.header.toLowerCase()) ?? []).includes(m.value);
  }
  if (m.cookie !== undefined) {
    const re = new RegExp(`(?:^|;[\\t\\n\\f\\r ]*)${reEscape(m.cookie)}=${reEscape(m.value)}(?:;|$)`); // Go's \s
    return (req.headers.get("cookie") ?? []).some((v) => re.test(v));
  }
  return (req.query.get(m.query ?? "") ?? []).includes(m.value);
}

/** Explains what the rendered split does with one request (the same decisions as splitServices). */
export function explainSplit(
  name: string,
  split: StoredSplit,
  up: readonly ReplicaInput[],
  req: RequestFacts,
): SplitExplanation {
  const shares = effectiveWeights(split, up);
  const mirror =
    split.mirror && inTrack(up, split.mirror.track).length > 0
      ? { ...split.mirror, maxBodyBytes: MIRROR_MAX_BODY_BYTES }
      : undefined;
  const skipped: string[] = [];
  for (const [i, rule] of (split.rules ?? []).entries()) {
    if (!requestMatches(rule.match, req)) {
      continue;
    }
    if (inTrack(up, rule.track).length === 0) {
      skipped.push(`rule ${i} matches but track ${rule.track} has no healthy replica (its router is not rendered)`);
      continue;
    }
    return {
      via: "rule",
      suffix: abSuffix(i),
      rank: abRank(i),
      service: trackServiceName(name, rule.track),
      ruleIndex: i,
      match: matcherFor(rule.match),
      track: rule.track,
      shares,
      ...(mirror ? { mirror } : {}),
      reason: [...skipped, `A/B rule ${i} (${matcherFor(rule.match)}) sends it to track ${rule.track}`].join("; "),
    };
  }
  const split_ = shares.map((s) => `${s.track} ${s.percent}%`).join(", ");
  const dropped = Object.keys(split.weights)
    .sort()
    .filter((t) => (split.weights[t] ?? 0) > 0 && !shares.some((s) => s.track === t));
  const why = [
    ...skipped,
    shares.length === 0
      ? "no weighted track has a healthy replica, so Traefik answers 503"
      : `weighted split ${split_}` +
        (split.sticky ? " (sticky: a client with the cookie stays on its track)" : "") +
        (dropped.length > 0 ? `; without a healthy replica: ${dropped.join(", ")} (share given to the others)` : ""),
  ];
  return {
    via: shares.length === 0 ? "none" : "weighted",
    rank: 0,
    service: name,
    shares,
    ...(shares.length === 1 ? { track: shares[0]?.track } : {}),
    ...(mirror ? { mirror } : {}),
    reason: why.join("; "),
  };
}
