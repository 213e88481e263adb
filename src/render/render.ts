import { byId } from "../lib/order.js";
import type { ReplicaAllowList } from "./address.js";
import { checkBackendTls, healthCheckFor, serversTransportFor, serversTransportName } from "./backend.js";
import { canonical } from "./canonical.js";
import { middlewaresFor, StoredMiddlewares } from "./middlewares.js";
import {
  DEPLOYMENT_HEADER,
  leastCpuMiddlewareName,
  PROXY_SECRET_HEADER,
  REDIRECT_TO_HTTP,
  REDIRECT_TO_HTTPS,
  routeName,
} from "./names.js";
import { resilienceFor } from "./resilience.js";
import { routerContext, routersFor } from "./routers.js";
import { STABLE_TRACK } from "./split-config.js";
import { addTrafficServices } from "./traffic.js";
import { parsedTraffic } from "./traffic-config.js";
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

/** Healthy, running replicas per deployment (input order; servers are sorted per service later). */
function healthyByDeployment(
  replicas: readonly ReplicaInput[],
  warnings: RenderWarning[],
  allowed: ReplicaAllowList | undefined,
): Map<string, ReplicaInput[]> {
  const byDeployment = new Map<string, ReplicaInput[]>();
  for (const r of replicas) {
    if (r.status !== "running" || r.healthStatus !== "healthy") {
      continue; // only healthy, running replicas get traffic
    }
    const reason = checkAddress(r.address, allowed) ?? (r.port === null ? undefined : checkPort(r.port));
    if (reason) {
      warnings.push({ kind: "replica", id: r.id, reason });
      continue;
    }
    const list = byDeployment.get(r.deploymentId);
    if (list) {
      list.push(r);
    } else {
      byDeployment.set(r.deploymentId, [r]);
    }
  }
  return byDeployment;
}

function serversFor(route: RouteInput, up: readonly ReplicaInput[] | undefined, noReplicaUrl: string): Server[] {
  if (!up || up.length === 0) {
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

/** Parses each deployment's stored middlewares once; `null` marks an invalid config (its routes are skipped). */
function parsedMiddlewares(raw: ReadonlyMap<string, unknown> | undefined): Map<string, StoredMiddlewares | null> {
  const out = new Map<string, StoredMiddlewares | null>();
  for (const [dep, value] of raw ?? []) {
    const r = StoredMiddlewares.safeParse(value);
    out.set(dep, r.success ? r.data : null);
  }
  return out;
}

/** Builds the Traefik dynamic config from routing rows and health. Pure: same input, same bytes, any row order. */
export function renderDynamicConfig(input: RenderInput): RenderResult {
  const { entryPoints, noReplicaUrl } = input.settings;
  const warnings: RenderWarning[] = [];
  const up = healthyByDeployment(input.replicas, warnings, input.settings.replicaAllowList);
  const certs = validCertificates(input.certificates ?? [], warnings);
  const mwConfigs = parsedMiddlewares(input.middlewares);
  const traffic = parsedTraffic(input.traffic);
  const mwDefs = new Map<string, Middleware>();
  const transports = new Map<string, ServersTransport>();
  const mwOpts = { trustForwardedFor: (input.settings.trustedProxyCidrs?.length ?? 0) > 0 };
  const mwWarned = new Set<string>();
  const resWarned = new Set<string>();

  const valid: [string, RouteInput][] = [];
  for (const route of input.routes) {
    // Fail closed: a deployment whose middleware settings do not validate (say, auth) is not served without them.
    const reason =
      checkRoute(route) ??
      (mwConfigs.get(route.deploymentId) === null ? "middleware settings are invalid" : undefined) ??
      (traffic.get(route.deploymentId) === null ? "traffic settings are invalid" : undefined);
    if (reason) {
      warnings.push({ kind: "route", id: route.id, reason }); // skip one row, keep the rest
    } else {
      valid.push([routeName(route), route]);
    }
  }
  valid.sort(byKey);

  // Routes are visited in name order, and `name--to-https` / `name--to-http` sort right after `name`: a name holds
  // exactly one "--", so another name sharing the prefix continues with an alphanumeric or "-" + alphanumeric,
  // both after "--".
  const routers: Record<string, Router> = {};
  const services: Record<string, Service> = {};
  const routerCtx = routerContext(entryPoints, certs);
  const noMiddlewares: readonly string[] = [];
  let redirects = false;
  let toHttp = false;
  let viaProxyRoutes = 0;
  for (const [name, route] of valid) {
    const viaProxy = route.loadBalancerAlgo === "least-conn" ? input.settings.fallbackProxy : undefined;
    const deploymentTraffic = traffic.get(route.deploymentId) ?? undefined;
    const resilience = resilienceFor(route, deploymentTraffic?.resilience, input.settings);
    const transport = viaProxy ? undefined : serversTransportFor(route, resilience?.transport);
    if (transport) {
      transports.set(serversTransportName(route, transport), transport);
    }
    let extras: ReturnType<typeof addTrafficServices> = NO_EXTRAS;
    if (viaProxy) {
      // h2c routes (gRPC): Traefik then speaks HTTP/2 with prior knowledge to the proxy, upgrades still HTTP/1
      // (pkg/server/service/smart_roundtripper.go); the proxy tells the two apart by the HTTP/2 preface.
      const url = route.protocol === "h2c" ? viaProxy.url.replace(/^http:\/\//, "h2c://") : viaProxy.url;
      services[name] = { loadBalancer: { passHostHeader: true, servers: [{ url }] } };
    } else if (!deploymentTraffic?.split && !deploymentTraffic?.geo) {
      // One pool of `stable` replicas (the common case, kept free of per-route closures: at 100k routes it counts).
      const depUp = up.get(route.deploymentId);
      services[name] = serviceFor(
        route,
        serversFor(route, depUp && inTrack(depUp, STABLE_TRACK), noReplicaUrl),
        input.settings,
        transport ? serversTransportName(route, transport) : undefined,
        resilience?.passiveHealthCheck,
      );
    } else {
      const transportName = transport ? serversTransportName(route, transport) : undefined;
      extras = addTrafficServices(
        {
          name,
          route,
          up: up.get(route.deploymentId) ?? [],
          traffic: deploymentTraffic,
          lbFor: (replicas) =>
            serviceFor(
              route,
              serversFor(route, replicas, noReplicaUrl),
              input.settings,
              transportName,
              resilience?.passiveHealthCheck,
            ),
          settings: input.settings,
        },
        services,
      );
    }
    const mwCfg = mwConfigs.get(route.deploymentId);
    let middlewares = noMiddlewares;
    if (mwCfg) {
      const { defs, chain, ignored } = middlewaresFor(route, mwCfg, mwOpts);
      for (const [n, def] of defs) {
        mwDefs.set(n, def);
      }
      if (ignored.length > 0 && !mwWarned.has(route.deploymentId)) {
        mwWarned.add(route.deploymentId); // deployment-wide settings: one warning per deployment
        warnings.push({ kind: "middleware", id: route.deploymentId, reason: ignored.join("; ") });
      }
      middlewares = chain;
    }
    if (resilience) {
      if (resilience.ignored && !resWarned.has(route.deploymentId)) {
        resWarned.add(route.deploymentId); // deployment-wide settings: one warning per deployment
        warnings.push({ kind: "middleware", id: route.deploymentId, reason: resilience.ignored.join("; ") });
      }
      for (const [n, def] of resilience.defs) {
        mwDefs.set(n, def);
      }
      middlewares = resilience.chain(middlewares);
    }
    if (viaProxy) {
      mwDefs.set(leastCpuMiddlewareName(name), {
        headers: {
          customRequestHeaders: { [DEPLOYMENT_HEADER]: route.deploymentId, [PROXY_SECRET_HEADER]: viaProxy.secret },
        },
      });
      viaProxyRoutes++;
    }
    routersFor({ name, route, middlewares, viaProxy: viaProxy !== undefined, extras }, routerCtx, routers);
    redirects ||= route.sslEnabled; // the twins' middlewares are defined once, below
    toHttp ||= !route.sslEnabled;
  }
  sortWarnings(warnings);

  if (redirects) {
    mwDefs.set(REDIRECT_TO_HTTPS, { redirectScheme: { permanent: true, scheme: "https" } });
  }
  if (toHttp) {
    // Not permanent: a browser must not remember https→http if the route later turns TLS on.
    mwDefs.set(REDIRECT_TO_HTTP, { redirectScheme: { permanent: false, scheme: "http" } });
  }
  // Keys in alphabetical order; never an empty map (Traefik's decoder rejects one, issue 9 #1).
  const http: DynamicConfig["http"] = {
    ...(mwDefs.size === 0 ? {} : { middlewares: sortedRecord(mwDefs) }),
    routers,
    ...(transports.size === 0 ? {} : { serversTransports: sortedRecord(transports) }),
    services,
  };
  const hasSecrets = certs.length > 0 || viaProxyRoutes > 0 || holdsSecrets(mwDefs);
  if (valid.length === 0) {
    // Nothing to route: `{}`, which Traefik applies (removing every router of this provider). Certificates alone
    // would serve no one, and an empty `routers` map would make Traefik reject the whole document (issue 9 #1).
    return { config: {}, warnings, hasSecrets: false };
  }
  if (certs.length === 0) {
    return { config: { http }, warnings, hasSecrets };
  }
  const tls = { certificates: certs.map((c) => ({ certFile: c.certPem, keyFile: c.keyPem })) };
  return { config: { http, tls }, warnings, hasSecrets };
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
