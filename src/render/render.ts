import { canonical, sortBy } from "./canonical.js";
import { REDIRECT_TO_HTTPS, redirectRouterName, routeName } from "./names.js";
import { priorityFor, ruleFor } from "./rules.js";
import type {
  DynamicConfig,
  Middleware,
  RenderInput,
  RenderResult,
  RenderWarning,
  ReplicaInput,
  RouteInput,
  Router,
  Server,
  Service,
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

/** Why a route row cannot be rendered, or undefined when it is fine. */
export function checkRoute(route: RouteInput): string | undefined {
  return (
    checkId(route.id) ??
    checkId(route.deploymentId) ??
    checkDomain(route.domain) ??
    checkPathPrefix(route.pathPrefix) ??
    checkPort(route.targetPort) ??
    (route.sslEnabled ? checkResolverName(route.sslCertResolver) : undefined)
  );
}

function groupReplicas(replicas: readonly ReplicaInput[], warnings: RenderWarning[]): Map<string, ReplicaInput[]> {
  const byDeployment = new Map<string, ReplicaInput[]>();
  for (const r of sortBy(replicas, (x) => x.id)) {
    if (r.status !== "running" || r.healthStatus !== "healthy") {
      continue; // only healthy, running replicas get traffic
    }
    const reason = checkAddress(r.address) ?? (r.port === null ? undefined : checkPort(r.port));
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
  const urls = new Set<string>();
  for (const r of up) {
    urls.add(`${route.protocol}://${urlHost(r.address)}:${r.port ?? route.targetPort}`);
  }
  return [...urls].sort().map((url) => ({ url }));
}

function serviceFor(route: RouteInput, servers: Server[]): Service {
  return {
    loadBalancer: {
      servers,
      passHostHeader: true,
      ...(route.loadBalancerAlgo === "ip-hash" ? { strategy: "hrw" as const } : {}),
    },
  };
}

/** Builds the Traefik dynamic config from routing rows and health. Pure: same input, same bytes, any row order. */
export function renderDynamicConfig(input: RenderInput): RenderResult {
  const { entryPoints, noReplicaUrl } = input.settings;
  const warnings: RenderWarning[] = [];
  const routers: Record<string, Router> = {};
  const services: Record<string, Service> = {};
  const middlewares: Record<string, Middleware> = {};
  const upByDeployment = groupReplicas(input.replicas, warnings);

  for (const route of sortBy(input.routes, (r) => r.id)) {
    const reason = checkRoute(route);
    if (reason) {
      warnings.push({ kind: "route", id: route.id, reason }); // skip one row, keep the rest
      continue;
    }
    const name = routeName(route);
    const rule = ruleFor(route.domain, route.pathPrefix);
    const priority = priorityFor(route.domain, route.pathPrefix);
    services[name] = serviceFor(route, serversFor(route, upByDeployment.get(route.deploymentId), noReplicaUrl));
    if (route.sslEnabled) {
      routers[name] = {
        rule,
        priority,
        service: name,
        entryPoints: [entryPoints.websecure],
        tls: { certResolver: route.sslCertResolver },
      };
      routers[redirectRouterName(name)] = {
        rule,
        priority,
        service: name,
        entryPoints: [entryPoints.web],
        middlewares: [REDIRECT_TO_HTTPS],
      };
      middlewares[REDIRECT_TO_HTTPS] = { redirectScheme: { scheme: "https", permanent: true } };
    } else {
      routers[name] = { rule, priority, service: name, entryPoints: [entryPoints.web] };
    }
  }

  const http: DynamicConfig["http"] = { routers, services };
  if (Object.keys(middlewares).length > 0) {
    http.middlewares = middlewares;
  }
  return { config: canonical({ http }), warnings };
}
