import {
  leastCpuMiddlewareName,
  REDIRECT_TO_HTTP,
  REDIRECT_TO_HTTPS,
  redirectRouterName,
  toHttpRouterName,
} from "./names.js";
import { priorityFor, ruleFor } from "./rules.js";
import { routerTls } from "./tls.js";
import type { ExtraRouter } from "./traffic-spec.js";
import type { RenderSettings, RouteInput, Router, TlsCertificateInput } from "./types.js";

/**
 * What every route's routers share, built once per render. The arrays are shared and never mutated: at 100k routes,
 * one allocation instead of 160k (the output is the same JSON).
 */
export interface RouterContext {
  readonly webEps: string[];
  readonly secureEps: string[];
  readonly toHttpsChain: string[];
  readonly toHttpChain: string[];
  /** Valid uploaded certificates, sorted by id: a route they cover needs no resolver. */
  readonly certs: readonly TlsCertificateInput[];
}

/** One render's router context: the configured entry point names and the uploaded certificates. */
export function routerContext(
  entryPoints: RenderSettings["entryPoints"],
  certs: readonly TlsCertificateInput[],
): RouterContext {
  return {
    webEps: [entryPoints.web],
    secureEps: [entryPoints.websecure],
    toHttpsChain: [REDIRECT_TO_HTTPS],
    toHttpChain: [REDIRECT_TO_HTTP],
    certs,
  };
}

/** One route as the router builder sees it. */
export interface RouterSpec {
  /** `routeName(route)`, already computed by the caller. */
  readonly name: string;
  /** The deployment's service the routers point at (one per deployment, src/render/render.ts). */
  readonly service: string;
  readonly route: RouteInput;
  /** The deployment's middleware chain (src/render/middlewares.ts order), possibly empty. Never sorted. */
  readonly middlewares: readonly string[];
  /** least-conn through the fallback proxy: its headers middleware goes last, so Traefik overwrites client copies. */
  readonly viaProxy: boolean;
  /** Routers beyond the base one (A/B rules, geo regions: src/render/traffic.ts). */
  readonly extras?: readonly ExtraRouter[];
}

const NO_CHAIN = {};

/**
 * The routers one route gets, in name order: the route's own router on its entry point, and a twin with the same
 * rule and priority on the other entry point that only redirects (TLS route: `name--to-https` on web; plain route:
 * `name--to-http` on websecure, so no other TLS router matching the host answers it, issue 9 #3). Pure, except that
 * it adds them to `into` when given (render's map: at 100k routes, no intermediate objects) and returns it.
 */
export function routersFor(
  spec: RouterSpec,
  ctx: RouterContext,
  into: Record<string, Router> = {},
): Record<string, Router> {
  const { name, route, service, middlewares, viaProxy } = spec;
  const rule = ruleFor(route.domain, route.pathPrefix);
  const priority = priorityFor(route.domain, route.pathPrefix);
  const withChain =
    middlewares.length === 0 && !viaProxy
      ? NO_CHAIN // no `middlewares` key at all, rather than [] (Traefik rejects empty lists)
      : { middlewares: viaProxy ? [...middlewares, leastCpuMiddlewareName(name)] : [...middlewares] };
  // Every literal lists its keys alphabetically: the output is canonical by construction (see render.ts).
  if (route.sslEnabled) {
    const tls = routerTls(route, ctx.certs);
    into[name] = { entryPoints: ctx.secureEps, ...withChain, priority, rule, service, tls };
    // (extras checked first: at 100k routes, no closure per route that has none)
    if (spec.extras && spec.extras.length > 0) {
      addExtras(
        spec,
        (extra) => ({
          entryPoints: ctx.secureEps,
          ...withChain,
          priority: priority + extra.rank,
          rule: `${rule} && ${extra.match}`,
          service: extra.service,
          tls,
        }),
        into,
      );
    }
    into[redirectRouterName(name)] = {
      entryPoints: ctx.webEps,
      middlewares: ctx.toHttpsChain,
      priority,
      rule,
      service,
    };
    return into;
  }
  into[name] = { entryPoints: ctx.webEps, ...withChain, priority, rule, service };
  if (spec.extras && spec.extras.length > 0) {
    addExtras(
      spec,
      (extra) => ({
        entryPoints: ctx.webEps,
        ...withChain,
        priority: priority + extra.rank,
        rule: `${rule} && ${extra.match}`,
        service: extra.service,
      }),
      into,
    );
  }
  // Same rule and priority as the route, so every scheme + host + path lands on the route `/routing/resolve` names;
  // `tls: {}` (no resolver) requests no certificate, and Traefik's default certificate answers the handshake.
  into[toHttpRouterName(name)] = {
    entryPoints: ctx.secureEps,
    middlewares: ctx.toHttpChain,
    priority,
    rule,
    service,
    tls: {},
  };
  return into;
}

/**
 * A route's extra routers (`<name>--<suffix>`), in name order: after the base router, before the `--to-https` /
 * `--to-http` twin (the suffixes are `ab-…`, `geo-…`: below `to-`). The twin keeps redirecting every request on
 * the other entry point, extras included: it has the base rule, which covers theirs.
 */
function addExtras(spec: RouterSpec, build: (extra: ExtraRouter) => Router, into: Record<string, Router>): void {
  const named = (spec.extras ?? []).map((e) => [`${spec.name}--${e.suffix}`, e] as const);
  named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [n, extra] of named) {
    into[n] = build(extra);
  }
}
