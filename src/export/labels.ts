import type { Protocol } from "../../schema/enums.js";
import { leastCpuMiddlewareName, redirectRouterName, routeName, toHttpRouterName } from "../render/names.js";
import type { LoadBalancer, RenderWarning, Router, TraefikDocument } from "../render/types.js";
import { flattenInto } from "./labels-flatten.js";

// Traefik Docker/Swarm provider labels for one deployment, derived from the rendered config (what Traefik gets
// from GET /traefik/config), so they cannot drift from it. Pure: same input, same output.
//
// How the Docker provider turns labels into config (traefik pkg/provider/docker/config.go):
// - build(): every container's labels are decoded on their own (pkg/config/label/label.go), then merged with
//   pkg/provider/merge.go Merge(ResourceStrategyMerge): a router or middleware defined by several containers must
//   be identical (reflect.DeepEqual), and services with the same name are merged by ServersLoadBalancer.Merge
//   (pkg/config/dynamic/http_config.go), which appends each container's server. So the same labels go on every
//   replica container, and the shared redirect middlewares can be defined by every deployment under one name.
// - addServer(): a service gets ONE server per container, `<server.scheme>://<container IP>:<server.port>`.
// - BuildRouterConfiguration (pkg/provider/configuration.go): a router without `.service` is linked only when the
//   container defines exactly one service; ours always name theirs. A container with no router gets a default
//   one (defaultRule, `Host(<container name>)`), hence `traefik.enable=false` when nothing is routed.
// - Names are per provider: ours resolve as `<name>@docker`, so they never clash with the HTTP or file provider's
//   copies; an object only another provider can define is referenced with `@file`.

/** What labelsFor needs to know about a route row besides the rendered config. */
export interface LabelRoute {
  id: string;
  deploymentId: string;
  /** The container port: `loadbalancer.server.port`. */
  targetPort: number;
  /** `loadbalancer.server.scheme` (http, https or h2c). */
  protocol: Protocol;
}

export interface NotExpressible {
  what: string;
  why: string;
}

export interface DeploymentLabels {
  /** Sorted by key. */
  labels: Record<string, string>;
  /** Sorted by `what`. */
  notExpressible: NotExpressible[];
}

export interface LabelsInput {
  /** The rendered config (the cache's, as served). */
  config: TraefikDocument;
  deploymentId: string;
  /** The deployment's route rows (others are ignored). */
  routes: readonly LabelRoute[];
  /** The render's warnings: why a route is missing from the config. */
  warnings?: readonly RenderWarning[];
}

/** The provider that holds what labels cannot define (serversTransports, certificates): `obiente-router export`. */
export const FILE_PROVIDER = "file";

/** Routers and services hold no map fields of ours: every key part below them is a struct field. */
const NO_MAPS = new Set<string>();
const MIDDLEWARE_MAPS = new Set(["customRequestHeaders", "customResponseHeaders"]);

const REPLICAS_WHY =
  "The Docker provider builds one server per container, from its IP on the network Traefik shares with it and " +
  "loadbalancer.server.port (pkg/provider/docker/config.go addServer): replica addresses, per-replica ports and " +
  "weights cannot be given. Put these labels on every replica container; Traefik merges the identical services " +
  "and keeps each container's server. It reads only running containers whose Docker HEALTHCHECK (if any) passes " +
  "(keepContainer), so with none left Traefik answers 404, where the served config keeps the router and answers 503.";

const LEAST_CONN_WHY =
  "least-conn sends requests through the bundled least-CPU proxy with a headers middleware carrying its shared " +
  "secret; labels are readable by anyone who can inspect the container, so the secret is never put in one. These " +
  "labels route straight to the containers with Traefik's default round-robin (wrr).";

/** Labels equivalent to the deployment's routers, services and middlewares in `config`, and what they cannot say. */
export function labelsFor(input: LabelsInput): DeploymentLabels {
  const http = input.config.http;
  const out: [string, string][] = [];
  const notes = new Map<string, string>();
  const refs = new Map<string, string>(); // middleware name → how a router references it
  const routes = input.routes
    .filter((r) => r.deploymentId === input.deploymentId)
    .map((r): [string, LabelRoute] => [routeName(r), r])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const middlewareRef = (name: string): string => {
    const known = refs.get(name);
    if (known !== undefined) {
      return known;
    }
    const def = http?.middlewares?.[name];
    const own: [string, string][] = [];
    const why = def ? flattenInto(`traefik.http.middlewares.${name}`, def, MIDDLEWARE_MAPS, own) : undefined;
    let ref = name;
    if (why === undefined) {
      out.push(...own);
    } else {
      ref = `${name}@${FILE_PROVIDER}`;
      notes.set(`middleware ${name}`, `${why}. The routers reference ${ref}: define it in the file provider.`);
    }
    refs.set(name, ref);
    return ref;
  };

  // Every route of a deployment points at the deployment's one service (src/render/render.ts): the labels define
  // each service once, from the first route (in name order) whose router names it, and every router names it.
  const services = new Map<string, LabelRoute>();
  let routed = 0;
  for (const [base, route] of routes) {
    const main = http?.routers[base];
    const service = main ? http?.services[main.service] : undefined;
    if (!main || !service) {
      const reason = input.warnings?.find((w) => w.kind === "route" && w.id === route.id)?.reason;
      notes.set(
        `route ${route.id}`,
        reason ? `not in the served config: ${reason}` : "not in the served config yet; ask again in a moment",
      );
      continue;
    }
    routed++;
    const proxyMw = leastCpuMiddlewareName(base);
    const viaProxy = main.middlewares?.includes(proxyMw) ?? false;
    if (viaProxy) {
      notes.set("least-conn balancing", LEAST_CONN_WHY);
    }
    for (const name of [base, redirectRouterName(base), toHttpRouterName(base)]) {
      const router = http.routers[name];
      if (router) {
        const chain = (router.middlewares ?? []).filter((m) => m !== proxyMw).map(middlewareRef);
        addRouter(name, router, chain, out, notes);
      }
    }
    if (main.tls && main.tls.certResolver === undefined) {
      notes.set(
        `certificate of ${base}`,
        "An uploaded certificate covers this route. Certificates (tls.certificates) cannot be defined by labels " +
          "(Traefik reads only traefik.tls.stores.default from them, pkg/config/label/label.go): the router asks for " +
          "TLS without a resolver, and Traefik finds the certificate only if the file provider defines it.",
      );
    }
    const extras = Object.keys(http.routers).filter(
      (n) => n.startsWith(`${base}--ab-`) || n.startsWith(`${base}--geo-`),
    );
    if (extras.length > 0) {
      // They point at services labels cannot define either (the other tracks' or regions' pools).
      notes.set(
        `traffic routers of ${base}`,
        `${extras.join(", ")} (A/B rules or geo regions) are not in these labels: serve this deployment from the ` +
          "HTTP provider to keep them.",
      );
    }
    if (!services.has(main.service)) {
      services.set(main.service, route);
    }
  }
  for (const [name, route] of services) {
    const lb = http?.services[name]?.loadBalancer;
    if (lb) {
      addService(name, lb, route, out, notes);
    } else {
      // Traffic management (split, mirror, geo) renders weighted/mirroring/failover services: the docker provider
      // decodes only loadBalancer services from labels (pkg/config/label), so these stay with the HTTP provider.
      notes.set(
        `service of ${name}`,
        "A traffic split, mirror or geo setting renders a weighted, mirroring or failover service, which labels " +
          "cannot define: serve this deployment from the HTTP provider.",
      );
    }
  }
  if (routed === 0) {
    // Without labels for a router, an exposed container gets Traefik's default router: say "not routed" instead.
    return { labels: { "traefik.enable": "false" }, notExpressible: sortedNotes(notes) };
  }
  out.push(["traefik.enable", "true"]);
  notes.set("replica servers", REPLICAS_WHY);
  out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { labels: Object.fromEntries(out), notExpressible: sortedNotes(notes) };
}

function addRouter(
  name: string,
  router: Router,
  chain: string[],
  out: [string, string][],
  notes: Map<string, string>,
): void {
  const { middlewares: _rendered, ...rest } = router;
  const body = chain.length > 0 ? { ...rest, middlewares: chain } : rest;
  const own: [string, string][] = [];
  const why = flattenInto(`traefik.http.routers.${name}`, body, NO_MAPS, own);
  if (why === undefined) {
    out.push(...own);
  } else {
    notes.set(`router ${name}`, `${why}; it is left out.`);
  }
}

function addService(
  name: string,
  lb: LoadBalancer,
  route: LabelRoute,
  out: [string, string][],
  notes: Map<string, string>,
): void {
  const { servers, serversTransport, ...rest } = lb;
  const body: Record<string, unknown> = {
    ...rest,
    // label-slice-as-struct:"server" (http_config.go ServersLoadBalancer.Servers): the one server of a container.
    server: { port: String(route.targetPort), scheme: route.protocol },
  };
  if (serversTransport !== undefined) {
    const ref = `${serversTransport}@${FILE_PROVIDER}`;
    body.serversTransport = ref;
    notes.set(
      `serversTransport ${serversTransport}`,
      'Labels cannot define serversTransports (HTTPConfiguration.ServersTransports is tagged label:"-", ' +
        `pkg/config/dynamic/http_config.go): the service references ${ref}, so the file provider must define it ` +
        "(the backend TLS server name, CA or insecureSkipVerify of this deployment).",
    );
  }
  if (servers.length === 1 && servers[0]?.weight === 0) {
    notes.set(
      `health check of ${name}`,
      "No replica is healthy right now: the served config points this service at a weight-0 placeholder and " +
        "leaves out Traefik's health check (TRAEFIK_HEALTHCHECK) meanwhile, so these labels lack it too; ask again " +
        "once a replica is healthy.",
    );
  }
  const own: [string, string][] = [];
  const why = flattenInto(`traefik.http.services.${name}.loadbalancer`, body, NO_MAPS, own);
  if (why === undefined) {
    out.push(...own);
  } else {
    notes.set(`service ${name}`, `${why}; it is left out.`);
  }
}

function sortedNotes(notes: Map<string, string>): NotExpressible[] {
  return [...notes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([what, why]) => ({ what, why }));
}
