import type { TraefikDocument } from "../render/types.js";

export interface GuardLimits {
  /** A candidate removing more than this share (percent) of the served routers is held. */
  maxRemovedPercent: number;
  /** Below this many served routers the guard never holds (a small platform may well lose most of them). */
  minRouters: number;
}

export interface GuardDecision {
  /** True: keep serving what is served now until an admin confirms the candidate. */
  hold: boolean;
  servedRouters: number;
  /** Names of the served routers the candidate no longer has, sorted. */
  removedRouters: string[];
  /** Share of the served routers removed, in percent (0 when nothing is served). */
  removedPercent: number;
}

const routerNames = (doc: TraefikDocument | undefined): string[] => Object.keys(doc?.http?.routers ?? {});

/**
 * Whether a newly rendered config may replace the one served now. Only removed routers count: health changes move
 * servers, never routers (render keeps a router with a placeholder server when no replica is healthy), so a mass
 * health failure cannot trip it. Pure.
 */
export function guardDecision(
  served: TraefikDocument | undefined,
  candidate: TraefikDocument,
  limits: GuardLimits,
  confirmed: boolean,
): GuardDecision {
  const before = routerNames(served);
  const after = candidate.http?.routers ?? {};
  return guardOnRemoved(
    before.length,
    before.filter((name) => !Object.hasOwn(after, name)),
    limits,
    confirmed,
  );
}

/**
 * The same decision from what is known without either whole document: how many routers are served and which of
 * them the candidate removes (an incremental render knows both from the deployments it re-rendered). Pure.
 */
export function guardOnRemoved(
  servedRouters: number,
  removed: readonly string[],
  limits: GuardLimits,
  confirmed: boolean,
): GuardDecision {
  const removedRouters = [...removed].sort();
  const removedPercent = servedRouters === 0 ? 0 : (removedRouters.length * 100) / servedRouters;
  const hold = !confirmed && servedRouters >= limits.minRouters && removedPercent > limits.maxRemovedPercent;
  return { hold, servedRouters, removedRouters, removedPercent };
}
