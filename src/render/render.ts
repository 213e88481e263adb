import { byId } from "../lib/order.js";
import type { ReplicaAllowList } from "./address.js";
import { checkBackendTls, healthCheckFor, serversTransportFor, serversTransportName } from "./backend.js";
import { canonical } from "./canonical.js";
import { middlewaresFor, StoredMiddlewares } from "./middlewares.js";
import {
  DEPLOYMENT_HEADER,
  deploymentServiceName,
  deploymentSlug,
  leastCpuMiddlewareName,
  PROXY_SECRET_HEADER,
  REDIRECT_TO_HTTP,
  REDIRECT_TO_HTTPS,
  routeName,
} from "./names.js";
import { resilienceFor } from "./resilience.js";
import { type RouterContext, routerContext, routersFor } from "./routers.js";
import { STABLE_TRACK } from "./split-config.js";
import { addTrafficServices } from "./traffic.js";
import { type DeploymentTraffic, parseTraffic } from "./traffic-config.js";
import { inTrack } from "./traffic-spec.js";
import type {
  DynamicConfig,
  LoadBalancer,
  Middleware,
  PassiveHealthCheck,
  RenderInput,
  RenderResult,
  RenderSettings,
  RenderWarning,
  ReplicaInput,
  RouteInput,
  Router,
  Server,
  ServersTransport,
  Service,
  TlsCertificateInput,
} from "./types.js";
import {
  checkAddress,
  checkDomain,
  checkId,
  checkPathPrefix,
  checkPort,
  checkResolverName,
  urlHost,
} from "./validate.js";

// Output is canonical by construction, not by a second pass: map keys are inserted in sorted order and every
// object literal below lists its keys alphabetically, so JSON.stringify emits sorted keys. A unit test checks
// `toJson(cfg) === toJson(canonical(cfg))`. (A recursive canonical() copy cost ~40% of render time at 100k.)

/** Why a route row cannot be rendered, or undefined when it is fine. */
export function checkRoute(route: RouteInput): string | undefined {
  return (
    checkId(route.id) ??
    checkId(route.deploymentId) ??
    checkDomain(route.domain) ??
    checkPathPrefix(route.pathPrefix) ??
    checkPort(route.targetPort) ??
    (route.sslEnabled ? checkResolverName(route.sslCertResolver) : undefined) ??
    checkBackendTls(route)
  );
}

const NO_EXTRAS: ReturnType<typeof addTrafficServices> = [];

const byKey = <T>(a: [string, T], b: [string, T]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** A deployment's healthy, running replicas (input order; servers are sorted per service later). */
function healthyReplicas(
  replicas: readonly ReplicaInput[],
  warnings: RenderWarning[],
  allowed: ReplicaAllowList | undefined,
): ReplicaInput[] {
  const out: ReplicaInput[] = [];
  for (const r of replicas) {
    if (r.status !== "running" || r.healthStatus !== "healthy") {
      continue; // only healthy, running replicas get traffic
    }
    const reason = checkAddress(r.address, allowed) ?? (r.port === null ? undefined : checkPort(r.port));
    if (reason) {
      warnings.push({ kind: "replica", id: r.id, reason });
      continue;
    }
    out.push(r);
  }
  return out;
}

function serversFor(route: RouteInput, up: readonly ReplicaInput[], noReplicaUrl: string): Server[] {
  if (up.length === 0) {
    // Traefik skips weight-0 servers, leaving the balancer empty: it answers 503 while the router keeps the host.
    return [{ url: noReplicaUrl, weight: 0 }];
  }
  const urls: string[] = [];
  for (const r of up) {
    const url = `${route.protocol}://${urlHost(r.address)}:${r.port ?? route.targetPort}`;
    if (!urls.includes(url)) {
      urls.push(url);
    }
  }
  urls.sort();
  return urls.map((url) => ({ url }));
}

/**
 * A route's load balancer service; `transport` names its servers transport (src/render/backend.ts) when it has one,
 * `passive` is the deployment's passive health check (src/render/resilience.ts).
 */
function serviceFor(
  route: RouteInput,
  servers: Server[],
  settings: RenderSettings,
  transport?: string,
  passive?: PassiveHealthCheck,
): Service {
  // Never a health check on the weight-0 placeholder.
  const healthCheck = servers[0]?.weight === 0 ? undefined : healthCheckFor(route, settings.traefikHealthCheck);
  const loadBalancer: LoadBalancer = passive
    ? { ...(healthCheck ? { healthCheck } : {}), passHostHeader: true, passiveHealthCheck: passive, servers }
    : healthCheck
      ? { healthCheck, passHostHeader: true, servers }
      : { passHostHeader: true, servers };
  if (transport) {
    loadBalancer.serversTransport = transport; // after `servers`, before `strategy`: keeps alphabetical order
  }
  if (route.loadBalancerAlgo === "ip-hash") {
    loadBalancer.strategy = "hrw"; // last key: keeps alphabetical order
  }
  return { loadBalancer };
}

const PEM_RE =
  /^-----BEGIN [A-Z0-9 ]+-----\r?\n[A-Za-z0-9+/=\r\n]+-----END [A-Z0-9 ]+-----\r?\n?(?:-----BEGIN [A-Z0-9 ]+-----\r?\n[A-Za-z0-9+/=\r\n]+-----END [A-Z0-9 ]+-----\r?\n?)*$/;

function validCertificates(certs: readonly TlsCertificateInput[], warnings: RenderWarning[]): TlsCertificateInput[] {
  const ok: TlsCertificateInput[] = [];
  for (const c of certs) {
    if (PEM_RE.test(c.certPem) && PEM_RE.test(c.keyPem)) {
      ok.push(c);
    } else {
      warnings.push({ kind: "certificate", id: c.id, reason: "certificate or key is not clean PEM" });
    }
  }
  return ok.sort(byId);
}

/** What every deployment's rendering shares, built once per render (or once per incremental renderer). */
export interface RenderContext {
  readonly settings: RenderSettings;
  readonly routerCtx: RouterContext;
  readonly mwOpts: { trustForwardedFor: boolean };
  /** Uploaded certificates that are clean PEM, sorted by id. */
  readonly certs: readonly TlsCertificateInput[];
  /** The warnings about certificates (not clean PEM). */
  readonly certWarnings: readonly RenderWarning[];
}

export function renderContext(settings: RenderSettings, certificates: readonly TlsCertificateInput[]): RenderContext {
  const certWarnings: RenderWarning[] = [];
  const certs = validCertificates(certificates, certWarnings);
  return {
    settings,
    routerCtx: routerContext(settings.entryPoints, certs),
    mwOpts: { trustForwardedFor: (settings.trustedProxyCidrs?.length ?? 0) > 0 },
    certs,
    certWarnings,
  };
}

/** One deployment's rows: its routes, its replicas, its stored middleware and traffic settings (unvalidated). */
export interface DeploymentInput {
  readonly id: string;
  readonly routes: readonly RouteInput[];
  readonly replicas: readonly ReplicaInput[];
  readonly middlewares?: unknown;
  readonly traffic?: unknown;
}

/**
 * Everything one deployment contributes to the document. Its routers and services are in name order and every
 * name starts with its `deploymentSlug` (its service is the slug itself); `middlewares` and `transports` may hold
 * shared entries (the redirect middlewares), identical wherever they appear.
 */
export interface DeploymentPart {
  readonly routers: Record<string, Router>;
  readonly services: Record<string, Service>;
  readonly middlewares: Map<string, Middleware> | undefined;
  readonly transports: Map<string, ServersTransport> | undefined;
  readonly warnings: RenderWarning[];
  /** Routes rendered (a route with a warning is not). */
  readonly routes: number;
  /** The part holds secrets: the fallback proxy secret, basic-auth hashes, custom header values. */
  readonly hasSecrets: boolean;
}

/** Groups rows by deployment, in the order the document lists deployments (by slug, see `deploymentSlug`). */
export function deploymentsOf(input: RenderInput): DeploymentInput[] {
  // The cold path runs this over every row: each deployment's object is built once in its final shape (no spread
  // copy), and consecutive rows of one deployment (the usual order of a query) skip the map lookup.
  type Grouped = { id: string; routes: RouteInput[]; replicas: ReplicaInput[]; middlewares: unknown; traffic: unknown };
  const middlewares = input.middlewares !== undefined && input.middlewares.size > 0 ? input.middlewares : undefined;
  const traffic = input.traffic !== undefined && input.traffic.size > 0 ? input.traffic : undefined;
  const byId = new Map<string, Grouped>();
  const keyed: [string, Grouped][] = [];
  const entry = (id: string): Grouped => {
    let e = byId.get(id);
    if (e === undefined) {
      e = { id, routes: [], replicas: [], middlewares: middlewares?.get(id), traffic: traffic?.get(id) };
      byId.set(id, e);
      keyed.push([deploymentKey(id), e]);
    }
    return e;
  };
  let last: Grouped | undefined;
  for (const r of input.routes) {
    if (last === undefined || last.id !== r.deploymentId) {
      last = entry(r.deploymentId);
    }
    last.routes.push(r);
  }
  last = undefined;
  for (const r of input.replicas) {
    if (last === undefined || last.id !== r.deploymentId) {
      last = entry(r.deploymentId);
    }
    last.replicas.push(r);
  }
  keyed.sort(byKey);
  const out: DeploymentInput[] = new Array(keyed.length);
  for (let i = 0; i < keyed.length; i++) {
    out[i] = (keyed[i] as [string, Grouped])[1];
  }
  return out;
}

/**
 * Where a deployment's names sort: `<slug>--` orders deployments exactly as their names (slugs hold no `--`, so
 * one deployment's names never interleave with another's). Ties (ids that fail checkId) keep the id as tiebreaker.
 */
export function deploymentKey(id: string): string {
  return `${deploymentSlug(id)}--\u0000${id}`;
}

/** Builds the Traefik dynamic config from routing rows and health. Pure: same input, same bytes, any row order. */
export function renderDynamicConfig(input: RenderInput): RenderResult {
  const ctx = renderContext(input.settings, input.certificates ?? []);
  const warnings: RenderWarning[] = [...ctx.certWarnings];
  const routers: Record<string, Router> = {};
  const services: Record<string, Service> = {};
  const mwDefs = new Map<string, Middleware>();
  const transports = new Map<string, ServersTransport>();
  let routes = 0;
  let hasSecrets = ctx.certs.length > 0;
  // Deployments in name order, each part's routers and services in name order: the maps are filled in sorted order.
  for (const dep of deploymentsOf(input)) {
    const part = renderDeployment(dep, ctx);
    Object.assign(routers, part.routers);
    Object.assign(services, part.services);
    for (const [n, d] of part.middlewares ?? []) {
      mwDefs.set(n, d);
    }
    for (const [n, t] of part.transports ?? []) {
      transports.set(n, t);
    }
    for (const w of part.warnings) {
      warnings.push(w);
    }
    routes += part.routes;
    hasSecrets ||= part.hasSecrets;
  }
  sortWarnings(warnings);
  if (routes === 0) {
    // Nothing to route: `{}`, which Traefik applies (removing every router of this provider). Certificates alone
    // would serve no one, and an empty `routers` map would make Traefik reject the whole document (issue 9 #1).
    return { config: {}, warnings, hasSecrets: false };
  }
  // Keys in alphabetical order; never an empty map (Traefik's decoder rejects one, issue 9 #1).
  const http: DynamicConfig["http"] = {
    ...(mwDefs.size === 0 ? {} : { middlewares: sortedRecord(mwDefs) }),
    routers,
    ...(transports.size === 0 ? {} : { serversTransports: sortedRecord(transports) }),
    services,
  };
  if (ctx.certs.length === 0) {
    return { config: { http }, warnings, hasSecrets };
  }
  return { config: { http, tls: tlsSection(ctx.certs) }, warnings, hasSecrets };
}

/** `tls.certificates`: the uploaded certificates, PEM inline. */
export function tlsSection(certs: readonly TlsCertificateInput[]): NonNullable<DynamicConfig["tls"]> {
  return { certificates: certs.map((c) => ({ certFile: c.certPem, keyFile: c.keyPem })) };
}

/** A deployment's services are keyed by what a load balancer needs: port, protocol, algorithm (and TLS, for sticky). */
function serviceSignature(route: RouteInput, stickyFollowsTls: boolean): string {
  const base = `${route.targetPort}-${route.protocol}-${route.loadBalancerAlgo}`;
  return stickyFollowsTls ? `${base}-${route.sslEnabled ? "tls" : "plain"}` : base;
}

/**
 * Renders one deployment: one Traefik service for all its routes (the rows keep port, protocol and algorithm
 * deployment-wide; should hand-edited rows disagree, each further combination gets `<slug>--svc-<port>-<protocol>-
 * <algo>`), one health check and one hash ring, and each route's routers pointing at it. Pure.
 */
export function renderDeployment(dep: DeploymentInput, ctx: RenderContext): DeploymentPart {
  const { settings } = ctx;
  const warnings: RenderWarning[] = [];
  const up = healthyReplicas(dep.replicas, warnings, settings.replicaAllowList);
  let mwCfg: StoredMiddlewares | null | undefined;
  if (dep.middlewares !== undefined) {
    const r = StoredMiddlewares.safeParse(dep.middlewares);
    mwCfg = r.success ? r.data : null;
  }
  const traffic = dep.traffic === undefined ? undefined : parseTraffic(dep.traffic);

  const valid: [string, RouteInput][] = [];
  for (const route of dep.routes) {
    // Fail closed: a deployment whose middleware settings do not validate (say, auth) is not served without them.
    const reason =
      checkRoute(route) ??
      (mwCfg === null ? "middleware settings are invalid" : undefined) ??
      (traffic === null ? "traffic settings are invalid" : undefined);
    if (reason) {
      warnings.push({ kind: "route", id: route.id, reason }); // skip one row, keep the rest
    } else {
      valid.push([routeName(route), route]);
    }
  }
  const routers: Record<string, Router> = {};
  if (valid.length === 0) {
    return {
      routers,
      services: {},
      middlewares: undefined,
      transports: undefined,
      warnings,
      routes: 0,
      hasSecrets: false,
    };
  }
  valid.sort(byKey);

  const slug = deploymentSlug(dep.id);
  const deploymentTraffic = traffic ?? undefined;
  const resilience = resilienceFor((valid[0] as [string, RouteInput])[1], deploymentTraffic?.resilience, settings);
  const services = new Map<string, Service>();
  let mwDefs: Map<string, Middleware> | undefined;
  let transports: Map<string, ServersTransport> | undefined;
  const defineMw = (n: string, d: Middleware) => {
    mwDefs ??= new Map();
    mwDefs.set(n, d);
  };
  if (resilience) {
    for (const [n, d] of resilience.defs) {
      defineMw(n, d);
    }
  }
  // Routes are visited in name order, and `name--to-https` / `name--to-http` sort right after `name`: a name holds
  // exactly one "--", so another name sharing the prefix continues with an alphanumeric or "-" + alphanumeric,
  // both after "--".
  const stickyFollowsTls =
    deploymentTraffic?.split?.sticky !== undefined && deploymentTraffic.split.sticky.secure === undefined;
  const groups = new Map<string, { service: string; extras: ReturnType<typeof addTrafficServices> }>();
  // The deployment's own name goes to the first route's combination, a TLS one when the sticky cookie follows TLS:
  // adding a plain route then never renames the service (Traefik derives its default sticky cookie name from it).
  const primary = (stickyFollowsTls ? valid.find(([, r]) => r.sslEnabled) : undefined) ?? valid[0];
  const baseSignature = serviceSignature((primary as [string, RouteInput])[1], stickyFollowsTls);
  let viaProxy: RenderSettings["fallbackProxy"];
  let mwIgnored: string[] | undefined;
  let redirects = false;
  let toHttp = false;
  for (const [name, route] of valid) {
    const signature = serviceSignature(route, stickyFollowsTls);
    let group = groups.get(signature);
    if (!group) {
      group = {
        service: signature === baseSignature ? deploymentServiceName(dep.id) : `${slug}--svc-${signature}`,
        extras: NO_EXTRAS,
      };
      group.extras = addServices(route, group.service, up, deploymentTraffic, resilience, ctx, services, (n, t) => {
        transports ??= new Map();
        transports.set(n, t);
      });
      groups.set(signature, group);
    }
    const routeViaProxy = route.loadBalancerAlgo === "least-conn" ? settings.fallbackProxy : undefined;
    viaProxy ??= routeViaProxy;
    let middlewares = NO_MIDDLEWARES;
    if (mwCfg) {
      const { defs, chain, ignored } = middlewaresFor(route, mwCfg, ctx.mwOpts);
      for (const [n, def] of defs) {
        defineMw(n, def);
      }
      if (ignored.length > 0) {
        mwIgnored ??= ignored; // deployment-wide settings: one warning per deployment
      }
      middlewares = chain;
    }
    if (resilience) {
      middlewares = resilience.chain(middlewares);
    }
    routersFor(
      { name, route, service: group.service, middlewares, viaProxy: routeViaProxy !== undefined, extras: group.extras },
      ctx.routerCtx,
      routers,
    );
    redirects ||= route.sslEnabled; // the twins' middlewares are shared entries, defined by every deployment using them
    toHttp ||= !route.sslEnabled;
  }
  // Deployment-wide settings: one warning per deployment (middlewares first, as they sit first in the chain).
  if (mwIgnored) {
    warnings.push({ kind: "middleware", id: dep.id, reason: mwIgnored.join("; ") });
  }
  if (resilience?.ignored) {
    warnings.push({ kind: "middleware", id: dep.id, reason: resilience.ignored.join("; ") });
  }
  if (viaProxy) {
    defineMw(leastCpuMiddlewareName(slug), {
      headers: { customRequestHeaders: { [DEPLOYMENT_HEADER]: dep.id, [PROXY_SECRET_HEADER]: viaProxy.secret } },
    });
  }
  if (redirects) {
    defineMw(REDIRECT_TO_HTTPS, REDIRECT_TO_HTTPS_DEF);
  }
  if (toHttp) {
    defineMw(REDIRECT_TO_HTTP, REDIRECT_TO_HTTP_DEF);
  }
  const sortedServices: Record<string, Service> = {};
  for (const n of services.size === 1 ? services.keys() : [...services.keys()].sort()) {
    sortedServices[n] = services.get(n) as Service;
  }
  return {
    routers,
    services: sortedServices,
    middlewares: mwDefs,
    transports,
    warnings,
    routes: valid.length,
    hasSecrets: viaProxy !== undefined || (mwDefs !== undefined && holdsSecrets(mwDefs)),
  };
}

const NO_MIDDLEWARES: readonly string[] = [];
const REDIRECT_TO_HTTPS_DEF: Middleware = { redirectScheme: { permanent: true, scheme: "https" } };
// Not permanent: a browser must not remember https→http if the route later turns TLS on.
const REDIRECT_TO_HTTP_DEF: Middleware = { redirectScheme: { permanent: false, scheme: "http" } };

/** Adds the services of one service group (named `service`); returns the extra routers its routes get. */
function addServices(
  route: RouteInput,
  service: string,
  up: readonly ReplicaInput[],
  traffic: DeploymentTraffic | undefined,
  resilience: ReturnType<typeof resilienceFor>,
  ctx: RenderContext,
  services: Map<string, Service>,
  defineTransport: (name: string, t: ServersTransport) => void,
): ReturnType<typeof addTrafficServices> {
  const { settings } = ctx;
  const viaProxy = route.loadBalancerAlgo === "least-conn" ? settings.fallbackProxy : undefined;
  if (viaProxy) {
    // h2c routes (gRPC): Traefik then speaks HTTP/2 with prior knowledge to the proxy, upgrades still HTTP/1
    // (pkg/server/service/smart_roundtripper.go); the proxy tells the two apart by the HTTP/2 preface.
    const url = route.protocol === "h2c" ? viaProxy.url.replace(/^http:\/\//, "h2c://") : viaProxy.url;
    services.set(service, { loadBalancer: { passHostHeader: true, servers: [{ url }] } });
    return NO_EXTRAS;
  }
  const transport = serversTransportFor(route, resilience?.transport);
  const transportName = transport ? serversTransportName(route, transport) : undefined;
  if (transport && transportName) {
    defineTransport(transportName, transport);
  }
  if (!traffic?.split && !traffic?.geo) {
    // One pool of `stable` replicas (the common case, kept free of closures: at 100k deployments it counts).
    services.set(
      service,
      serviceFor(
        route,
        serversFor(route, inTrack(up, STABLE_TRACK), settings.noReplicaUrl),
        settings,
        transportName,
        resilience?.passiveHealthCheck,
      ),
    );
    return NO_EXTRAS;
  }
  const out: Record<string, Service> = {};
  const extras = addTrafficServices(
    {
      name: service,
      route,
      up,
      traffic,
      lbFor: (replicas) =>
        serviceFor(
          route,
          serversFor(route, replicas, settings.noReplicaUrl),
          settings,
          transportName,
          resilience?.passiveHealthCheck,
        ),
      settings,
    },
    out,
  );
  for (const [n, s] of Object.entries(out)) {
    services.set(n, s);
  }
  return extras;
}

/** Basic-auth hashes and custom header values (API keys, the proxy secret) must not be served anonymously. */
function holdsSecrets(mws: ReadonlyMap<string, Middleware>): boolean {
  for (const m of mws.values()) {
    if (m.basicAuth || m.headers?.customRequestHeaders || m.headers?.customResponseHeaders) {
      return true;
    }
  }
  return false;
}

/** Small maps (middlewares): sorted keys, each value canonical. */
function sortedRecord<T>(m: Map<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of [...m.keys()].sort()) {
    out[k] = canonical(m.get(k) as T);
  }
  return out;
}

function sortWarnings(warnings: RenderWarning[]): void {
  warnings.sort((a, b) => (a.kind + a.id < b.kind + b.id ? -1 : a.kind + a.id > b.kind + b.id ? 1 : 0));
}
