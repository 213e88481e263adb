import { healthCheckFor } from "./backend.js";
import { deploymentServiceName, REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS, routeName } from "./names.js";
import { checkRoute, type DeploymentInput, type RenderContext } from "./render.js";
import { priorityFor, ruleFor } from "./rules.js";
import { STABLE_TRACK } from "./split-config.js";
import { certificateFor } from "./tls.js";
import type { RouteInput } from "./types.js";
import { checkAddress, checkPort, urlHost } from "./validate.js";

// The cold path's common case written straight to JSON: a deployment with no stored middleware or traffic
// settings, every route and healthy replica valid, one service (all routes agree on port, protocol and algorithm),
// no servers transport and no fallback proxy. Its routers and service are written as text in the exact bytes
// `renderDeployment` + JSON.stringify give (src/render/render.ts, routers.ts, tls.ts, backend.ts), without the
// object tree in between: at 100k deployments that tree was most of the cold render's garbage. Anything else
// returns undefined and takes the generic path (src/render/fragments.ts); test/unit/served-document.test.ts checks
// the bytes against the reference render over random platforms that mix both shapes.

/** What the text fragment needs, as served-document.ts reads it (the `Fragment` fields of fragments.ts). */
export interface FastParts {
  readonly routers: string;
  readonly services: string;
  /** The shared redirect middlewares the routes use, in name order (same arrays every time). */
  readonly middlewares: readonly (readonly [string, string])[];
  readonly routerNames: string[];
  readonly routes: number;
  readonly serviceCount: number;
}

/** Serialized constants of one render context, built once per context. */
interface Consts {
  readonly web: string;
  readonly secure: string;
  readonly toHttps: string;
  readonly toHttp: string;
  readonly placeholder: string;
  /** certResolver → `{"certResolver":"…"}`. */
  readonly tls: Map<string, string>;
  /** protocol → healthCheck JSON, for routes with no health overrides (the common case). */
  readonly health: Map<string, string>;
}

const CONSTS = new WeakMap<RenderContext, Consts>();

function constsOf(ctx: RenderContext): Consts {
  let c = CONSTS.get(ctx);
  if (!c) {
    const { routerCtx, settings } = ctx;
    c = {
      web: JSON.stringify(routerCtx.webEps),
      secure: JSON.stringify(routerCtx.secureEps),
      toHttps: JSON.stringify(routerCtx.toHttpsChain),
      toHttp: JSON.stringify(routerCtx.toHttpChain),
      placeholder: `[{"url":${JSON.stringify(settings.noReplicaUrl)},"weight":0}]`,
      tls: new Map(),
      health: new Map(),
    };
    CONSTS.set(ctx, c);
  }
  return c;
}

// The redirect middlewares' definitions as render.ts defines them (canonical: keys already sorted).
const TO_HTTPS: readonly [string, string] = [
  REDIRECT_TO_HTTPS,
  '{"redirectScheme":{"permanent":true,"scheme":"https"}}',
];
const TO_HTTP: readonly [string, string] = [REDIRECT_TO_HTTP, '{"redirectScheme":{"permanent":false,"scheme":"http"}}'];
// Name order: `…-to-http` < `…-to-https`.
const SHARED_BOTH = [TO_HTTP, TO_HTTPS] as const;
const SHARED_TLS = [TO_HTTPS] as const;
const SHARED_PLAIN = [TO_HTTP] as const;
const SHARED_NONE: readonly (readonly [string, string])[] = [];

/**
 * The deployment's routers and service as the text inside their maps, or undefined when it is not of the common
 * shape (the caller then renders it the generic way). Pure.
 */
export function fastParts(dep: DeploymentInput, ctx: RenderContext): FastParts | undefined {
  if (dep.middlewares !== undefined || dep.traffic !== undefined) {
    return undefined;
  }
  const { settings } = ctx;
  const n = dep.routes.length;
  if (n === 0) {
    return undefined; // rare; the generic path also reports replica warnings of a deployment with no routes
  }
  // Routes: all valid, one service signature, no servers transport, not via the fallback proxy.
  const first = dep.routes[0] as RouteInput;
  let names: string[];
  let routes: readonly RouteInput[];
  if (n === 1) {
    if (!plain(first, dep.id, first, settings.fallbackProxy !== undefined)) {
      return undefined;
    }
    names = [flat(routeName(first))];
    routes = dep.routes;
  } else {
    const named: [string, RouteInput][] = [];
    for (const route of dep.routes) {
      if (!plain(route, dep.id, first, settings.fallbackProxy !== undefined)) {
        return undefined;
      }
      named.push([flat(routeName(route)), route]);
    }
    named.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    names = [];
    const sorted: RouteInput[] = [];
    for (const [name, route] of named) {
      if (names.length > 0 && names[names.length - 1] === name) {
        return undefined; // two rows with one name: the generic path keeps the last one's value
      }
      names.push(name);
      sorted.push(route);
    }
    routes = sorted;
  }

  // Healthy replicas, all valid (an invalid one is a warning: generic path).
  const lead = routes[0] as RouteInput; // the service is built from the first route in name order
  const urls: string[] = [];
  for (const r of dep.replicas) {
    if (r.status !== "running" || r.healthStatus !== "healthy") {
      continue;
    }
    if (checkAddress(r.address, settings.replicaAllowList) !== undefined) {
      return undefined;
    }
    if (r.port !== null && checkPort(r.port) !== undefined) {
      return undefined;
    }
    if ((r.track ?? STABLE_TRACK) !== STABLE_TRACK) {
      continue; // without a split only `stable` replicas get traffic
    }
    const url = `${lead.protocol}://${urlHost(r.address)}:${r.port ?? lead.targetPort}`;
    if (!urls.includes(url)) {
      urls.push(url);
    }
  }

  const c = constsOf(ctx);
  const service = deploymentServiceName(dep.id);
  const svc = `"${service}"`; // checkId passed: a slug of [a-z0-9-], nothing to escape
  let servers: string;
  let health = "";
  if (urls.length === 0) {
    servers = c.placeholder; // never a health check on the weight-0 placeholder
  } else {
    urls.sort();
    servers = `[{"url":${JSON.stringify(urls[0])}}`;
    for (let i = 1; i < urls.length; i++) {
      servers += `,{"url":${JSON.stringify(urls[i])}}`;
    }
    servers += "]";
    if (settings.traefikHealthCheck) {
      health = `"healthCheck":${healthJson(lead, c, settings.traefikHealthCheck)},`;
    }
  }
  const strategy = lead.loadBalancerAlgo === "ip-hash" ? ',"strategy":"hrw"' : "";
  const services = `${svc}:{"loadBalancer":{${health}"passHostHeader":true,"servers":${servers}${strategy}}}`;

  let routers = "";
  const routerNames: string[] = [];
  let tls = false;
  let toHttp = false;
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i] as RouteInput;
    const name = names[i] as string;
    const rule = JSON.stringify(ruleFor(route.domain, route.pathPrefix));
    const priority = priorityFor(route.domain, route.pathPrefix);
    if (i > 0) {
      routers += ",";
    }
    if (route.sslEnabled) {
      tls = true;
      const twin = flat(`${name}--to-https`);
      routers +=
        `"${name}":{"entryPoints":${c.secure},"priority":${priority},"rule":${rule},"service":${svc},"tls":${tlsJson(route, ctx, c)}},` +
        `"${twin}":{"entryPoints":${c.web},"middlewares":${c.toHttps},"priority":${priority},"rule":${rule},"service":${svc}}`;
      routerNames.push(name, twin);
    } else {
      toHttp = true;
      const twin = flat(`${name}--to-http`);
      routers +=
        `"${name}":{"entryPoints":${c.web},"priority":${priority},"rule":${rule},"service":${svc}},` +
        `"${twin}":{"entryPoints":${c.secure},"middlewares":${c.toHttp},"priority":${priority},"rule":${rule},"service":${svc},"tls":{}}`;
      routerNames.push(name, twin);
    }
  }
  return {
    routers: flat(routers),
    services: flat(services),
    middlewares: tls ? (toHttp ? SHARED_BOTH : SHARED_TLS) : toHttp ? SHARED_PLAIN : SHARED_NONE,
    routerNames,
    routes: routes.length,
    serviceCount: 1,
  };
}

/**
 * The same string, flattened: a template literal builds a tree of cons strings (one node per piece), and the
 * fragment lives on in the document, so every node would be promoted and traced by the GC (at 100k deployments,
 * millions of them; flat, the same text takes about half the heap). Reading a character of a cons string makes V8
 * flatten it in place; the tree then dies young.
 */
function flat(s: string): string {
  _lastRead = s.charCodeAt(0); // stored, so the read is not optimised away
  return s;
}
let _lastRead = 0;

/**
 * A route the fast path can write: valid (checkRoute), its deployment's, same service signature as `first` (port, protocol,
 * algorithm), no servers transport (an https route with a verification policy has one), and not least-conn through
 * the fallback proxy (headers middleware with the proxy secret).
 */
function plain(route: RouteInput, depId: string, first: RouteInput, viaProxy: boolean): boolean {
  if (
    route.deploymentId !== depId || // names below are written unescaped: checkRoute vouches for this id only
    route.targetPort !== first.targetPort ||
    route.protocol !== first.protocol ||
    route.loadBalancerAlgo !== first.loadBalancerAlgo ||
    (viaProxy && route.loadBalancerAlgo === "least-conn")
  ) {
    return false;
  }
  const b = route.protocol === "https" ? route.backendTls : undefined;
  if (b && (b.serverName !== null || b.caPem !== null || b.insecureSkipVerify)) {
    return false;
  }
  return checkRoute(route) === undefined;
}

/** Router TLS as tls.ts `routerTls` gives it, serialized. */
function tlsJson(route: RouteInput, ctx: RenderContext, c: Consts): string {
  if (ctx.certs.length > 0 && certificateFor(route.domain, ctx.certs)) {
    return "{}";
  }
  const resolver = route.sslCertResolver;
  if (route.domain.startsWith("*.")) {
    const sans = route.tlsIncludeApex ? `,"sans":[${JSON.stringify(route.domain.slice(2))}]` : "";
    return `{"certResolver":${JSON.stringify(resolver)},"domains":[{"main":${JSON.stringify(route.domain)}${sans}}]}`;
  }
  let json = c.tls.get(resolver);
  if (json === undefined) {
    json = `{"certResolver":${JSON.stringify(resolver)}}`;
    c.tls.set(resolver, json);
  }
  return json;
}

/** Traefik's active health check (backend.ts `healthCheckFor`), serialized; cached for routes without overrides. */
function healthJson(
  route: RouteInput,
  c: Consts,
  defaults: NonNullable<RenderContext["settings"]["traefikHealthCheck"]>,
): string {
  const overrides =
    route.healthPath != null ||
    route.healthIntervalSeconds != null ||
    route.healthTimeoutSeconds != null ||
    route.healthMode != null ||
    route.healthExpectedStatus != null;
  if (overrides) {
    return JSON.stringify(healthCheckFor(route, defaults));
  }
  let json = c.health.get(route.protocol);
  if (json === undefined) {
    json = JSON.stringify(healthCheckFor(route, defaults));
    c.health.set(route.protocol, json);
  }
  return json;
}
