import { FULL_CHAIN_ORDER } from "./middlewares.js";
import { routeName } from "./names.js";
import { retryFieldsNeeding37, type StoredResilience } from "./resilience-config.js";
import type { Middleware, PassiveHealthCheck, RenderSettings, RouteInput, ServersTransport } from "./types.js";

// A deployment's resilience settings as Traefik config: retry, circuit breaker and in-flight limit middlewares,
// forwarding timeouts on its servers transport, passive health on its load balancers. Pure.
//
// Shapes from Traefik v3.7.9 pkg/config/dynamic/middlewares.go (Retry, CircuitBreaker, InFlightReq,
// SourceCriterion) and http_config.go (ForwardingTimeouts, PassiveServerHealthCheck, the latter since v3.6.0).
// Retry `status` and `timeout` arrive in v3.7.0: a v3.6 Traefik rejects the whole document when it sees them.

export interface ResilienceParts {
  /** Middleware definitions, by name. */
  readonly defs: readonly [string, Middleware][];
  /** The route's chain with the resilience middlewares in their place. */
  readonly chain: (base: readonly string[]) => readonly string[];
  /** Merged into the deployment's servers transport. */
  readonly transport?: ServersTransport;
  readonly passiveHealthCheck?: PassiveHealthCheck;
  /** Stored settings not rendered as stored, and why (for a render warning on the deployment). */
  readonly ignored?: readonly string[];
}

type ChainKind = (typeof FULL_CHAIN_ORDER)[number];
const RANK = new Map<string, number>(FULL_CHAIN_ORDER.map((k, i) => [k, i]));

/** A middleware name's place in FULL_CHAIN_ORDER (names end in `--<kind>`), or undefined for another middleware. */
function rankOf(name: string): number | undefined {
  const kind = FULL_CHAIN_ORDER.find((k) => name.endsWith(`--${k}`));
  return kind === undefined ? undefined : RANK.get(kind);
}

/** Inserts `name` (of `kind`) before the first middleware of `chain` that comes after it in FULL_CHAIN_ORDER. */
function insertInOrder(chain: string[], name: string, kind: ChainKind): void {
  const rank = RANK.get(kind) ?? 0;
  const at = chain.findIndex((n) => (rankOf(n) ?? -1) > rank);
  if (at < 0) {
    chain.push(name);
  } else {
    chain.splice(at, 0, name);
  }
}

/** Milliseconds as a Go duration string (time.ParseDuration, via ptypes.Duration): "2s", "1500ms". */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** What a deployment's resilience settings add to one of its routes, or undefined when there are none. */
export function resilienceFor(
  route: RouteInput,
  cfg: StoredResilience | undefined,
  settings: RenderSettings,
): ResilienceParts | undefined {
  if (!cfg || Object.values(cfg).every((v) => v === undefined)) {
    return undefined;
  }
  const dep = routeName(route).split("--")[0] ?? "x";
  const defs: [string, Middleware][] = [];
  const kinds: [string, ChainKind][] = [];
  const ignored: string[] = [];
  const add = (kind: ChainKind, mw: Middleware) => {
    defs.push([`${dep}--${kind}`, mw]);
    kinds.push([`${dep}--${kind}`, kind]);
  };

  if (cfg.max_in_flight) {
    const m = cfg.max_in_flight;
    // inflightreq.New (pkg/middlewares/inflightreq/inflight_req.go) falls back to requestHost when no criterion is
    // set; `ipStrategy: {depth: 0}` is the peer address (IPStrategy.Get, pkg/config/dynamic/middlewares.go). It
    // must not be an empty map: Traefik's decoder drops `ipStrategy: {}` and the requestHost default would apply.
    let depth = 0;
    if (m.per === "client_ip" && m.ip_depth !== undefined) {
      if ((settings.trustedProxyCidrs?.length ?? 0) > 0) {
        depth = m.ip_depth;
      } else {
        ignored.push(
          `max_in_flight.ip_depth ${m.ip_depth} not rendered (the peer address is used): TRUSTED_PROXY_CIDRS is empty, so Traefik deletes X-Forwarded-For`,
        );
      }
    }
    add("in-flight", {
      inFlightReq: {
        amount: m.amount,
        sourceCriterion: m.per === "host" ? { requestHost: true } : { ipStrategy: { depth } },
      },
    });
  }
  if (cfg.circuit_breaker) {
    const c = cfg.circuit_breaker;
    add("circuit-breaker", {
      circuitBreaker: {
        ...(c.check_period_ms === undefined ? {} : { checkPeriod: goDuration(c.check_period_ms) }),
        expression: c.expression, // normal form: StoredResilience parsed it (src/render/cb-expression.ts)
        ...(c.fallback_duration_ms === undefined ? {} : { fallbackDuration: goDuration(c.fallback_duration_ms) }),
        ...(c.recovery_duration_ms === undefined ? {} : { recoveryDuration: goDuration(c.recovery_duration_ms) }),
        ...(c.response_code === undefined ? {} : { responseCode: c.response_code }),
      },
    });
  }
  if (cfg.retry) {
    const r = cfg.retry;
    const v37 = settings.traefikVersion === "3.7";
    if (!v37) {
      for (const field of retryFieldsNeeding37(cfg)) {
        ignored.push(`${field} not rendered: it needs Traefik ≥ 3.7 (TRAEFIK_VERSION=3.7); 3.6 rejects the document`);
      }
    }
    add("retry", {
      retry: {
        attempts: r.attempts,
        ...(r.initial_interval_ms ? { initialInterval: goDuration(r.initial_interval_ms) } : {}),
        ...(v37 && r.status ? { status: [...r.status] } : {}),
        ...(v37 && r.timeout_ms !== undefined ? { timeout: goDuration(r.timeout_ms) } : {}),
      },
    });
  }

  const t = cfg.timeouts;
  // Forwarding timeouts are per servers transport (pkg/server/service/transport.go createRoundTripper); unset ones
  // keep Traefik's defaults (ForwardingTimeouts.SetDefaults: dial 30s, idle 90s).
  const transport: ServersTransport | undefined = t
    ? {
        forwardingTimeouts: {
          ...(t.dial_ms === undefined ? {} : { dialTimeout: goDuration(t.dial_ms) }),
          ...(t.idle_conn_ms === undefined ? {} : { idleConnTimeout: goDuration(t.idle_conn_ms) }),
          ...(t.response_header_ms === undefined ? {} : { responseHeaderTimeout: goDuration(t.response_header_ms) }),
        },
      }
    : undefined;
  // Both fields always: an empty `passiveHealthCheck: {}` is dropped by Traefik's decoder (no check at all).
  const p = cfg.passive_health;
  const passiveHealthCheck: PassiveHealthCheck | undefined = p
    ? { failureWindow: `${p.failure_window_seconds}s`, maxFailedAttempts: p.max_failed_attempts }
    : undefined;

  const chain = (base: readonly string[]) => {
    const out = [...base];
    for (const [name, kind] of kinds) {
      insertInOrder(out, name, kind);
    }
    return out;
  };
  return {
    chain,
    defs,
    ...(ignored.length > 0 ? { ignored } : {}),
    ...(passiveHealthCheck ? { passiveHealthCheck } : {}),
    ...(transport ? { transport } : {}),
  };
}
