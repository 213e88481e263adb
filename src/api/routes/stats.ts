import { createRoute } from "@hono/zod-openapi";
import { listCertificates } from "../../db/repo/certificates.js";
import { countDeployments } from "../../db/repo/deployments.js";
import { countReplicasByHealth } from "../../db/repo/locations.js";
import { countRevisionsSince } from "../../db/repo/revisions.js";
import { loadSnapshot, type RoutingSnapshot } from "../../db/repo/snapshot.js";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import { SUMMARY_NAMES } from "../../provider/revisions.js";
import { countryMatch, explainGeo, regionRouterSuffix, regionServiceName } from "../../render/geo.js";
import { deploymentServiceName, redirectRouterName, routeName, toHttpRouterName } from "../../render/names.js";
import { checkRoute, renderContext, renderDeployment } from "../../render/render.js";
import { hostMatches, matchRoute, priorityFor, routingPath, ruleFor } from "../../render/rules.js";
import { explainSplit, type RequestFacts } from "../../render/split.js";
import { STABLE_TRACK } from "../../render/split-config.js";
import { parsedTraffic } from "../../render/traffic-config.js";
import { inTrack } from "../../render/traffic-spec.js";
import type { RenderSettings, RouteInput } from "../../render/types.js";
import { expiringSoon } from "../../tls/expiry.js";
import { contracts, json, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { normalizeDomain, ResolutionView, ResolveQuery, StatsView } from "../schemas.js";

/** `/x?a=b` → [`/x`, `a=b`]. */
function splitQuery(raw: string): [string, string | undefined] {
  const i = raw.indexOf("?");
  return i < 0 ? [raw, undefined] : [raw.slice(0, i), raw.slice(i + 1)];
}

/**
 * The request as Traefik's matchers see it: header values by lower-case name (Go's CanonicalHeaderKey makes the
 * name case-insensitive), the `cookie` parameter as one more Cookie header, and the query string decoded like Go's
 * `url.ParseQuery` (`+` is a space; a pair holding `;` is dropped, as Go ≥ 1.17 does).
 */
function requestFacts(
  header: string | string[] | undefined,
  cookie: string | undefined,
  queryString: string | undefined,
): RequestFacts {
  const headers = new Map<string, string[]>();
  const add = (k: string, v: string) => {
    const list = headers.get(k);
    if (list) {
      list.push(v);
    } else {
      headers.set(k, [v]);
    }
  };
  for (const line of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
    const i = line.indexOf(":");
    add(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  if (cookie !== undefined) {
    add("cookie", cookie);
  }
  const query = new Map<string, string[]>();
  for (const pair of (queryString ?? "").split("&")) {
    if (pair === "" || pair.includes(";")) {
      continue;
    }
    try {
      const [k, v = ""] = pair.split(/=(.*)/s);
      const key = decodeURIComponent((k ?? "").replaceAll("+", " "));
      const value = decodeURIComponent(v.replaceAll("+", " "));
      const list = query.get(key);
      if (list) {
        list.push(value);
      } else {
        query.set(key, [value]);
      }
    } catch {
      // a malformed escape: Go's ParseQuery drops that pair too
    }
  }
  return { headers, query };
}

/**
 * The service a route's routers point at, as rendered: its deployment's one service (src/render/render.ts), whose
 * name the split and geo sub-services extend. Read from the deployment's rendered part rather than recomputed, so
 * it is right too where a deployment's routes get two services (a sticky split over TLS and plain routes, rows that
 * disagree on the port).
 */
function serviceOf(snap: RoutingSnapshot, route: RouteInput, settings: RenderSettings): string {
  const id = route.deploymentId;
  const part = renderDeployment(
    {
      id,
      routes: snap.routes.filter((r) => r.deploymentId === id),
      replicas: snap.replicas.filter((r) => r.deploymentId === id),
      middlewares: snap.middlewares.get(id),
      traffic: snap.traffic.get(id),
    },
    renderContext(settings, []), // certificates decide routers' TLS, never a service name
  );
  return part.routers[routeName(route)]?.service ?? deploymentServiceName(id);
}

const stats = createRoute({
  method: "get",
  path: "/stats",
  summary: "Routes, replicas, config revision, freeze, guard and Traefik pollers",
  security: READ,
  responses: { 200: json(StatsView, "Statistics"), ...problems(401) },
});

const resolve = createRoute({
  method: "get",
  path: "/resolve",
  summary: "Which route answers scheme + host + path (serving, or redirecting to the scheme it serves), and why",
  security: READ,
  request: { query: ResolveQuery },
  responses: { 200: json(ResolutionView, "Resolution"), ...problems(400, 401) },
});

/** `/routing/stats` and `/routing/resolve`: what is served, to whom, and why a host lands where it does. */
export function statsApi({ handle: { db }, cache, pollers, clock, config, settings }: Deps) {
  return contracts()
    .openapi(stats, async (c) => {
      // Like a poll, wait briefly for a pending re-render: right after a write, the old revision would make every
      // poller look current.
      const cfg = await cache.freshWithin(FRESH_WAIT_MS);
      const { freeze, held } = cache;
      const [deployments, replicas, certs, waiting] = await Promise.all([
        countDeployments(db),
        countReplicasByHealth(db),
        listCertificates(db),
        freeze ? countRevisionsSince(db, freeze.frozenAt) : 0,
      ]);
      return c.json(
        {
          total_routes: cfg?.routeCount ?? 0,
          cached_proxies: cfg?.serviceCount ?? 0,
          timestamp: clock.now().toISOString(),
          deployments,
          replicas,
          certificates: {
            total: certs.length,
            expiring_soon: expiringSoon(certs, clock.now(), config.CERT_EXPIRY_WARN_DAYS),
          },
          config: cfg
            ? {
                revision: cfg.revision,
                hash: cfg.hash,
                bytes: cfg.bytes,
                rendered_at: cfg.renderedAt.toISOString(),
                render_ms: Math.round(cfg.renderMs * 10) / 10,
                stale: cache.stale,
                skipped_rows: cfg.warnings,
              }
            : null,
          freeze: freeze
            ? {
                revision: freeze.revision,
                reason: freeze.reason,
                actor: freeze.actor,
                frozen_at: freeze.frozenAt.toISOString(),
                waiting_revisions: waiting,
              }
            : null,
          guard: held
            ? {
                held_revision: held.revision,
                served_revision: cfg?.revision ?? null,
                removed_routers: held.decision.removedRouters.length,
                served_routers: held.decision.servedRouters,
                removed_percent: Math.round(held.decision.removedPercent * 10) / 10,
                max_removed_percent: config.GUARD_MAX_REMOVED_PERCENT,
                removed_router_names: held.decision.removedRouters.slice(0, SUMMARY_NAMES),
                held_since: held.since.toISOString(),
                confirm: `POST /api/v1/routing/revisions/${held.revision}/confirm`,
              }
            : null,
          pollers: pollers.list().map((p) => ({
            node: p.node,
            last_poll_at: p.lastPollAt,
            polls: p.polls,
            serving_current: p.lastHash === cfg?.hash,
            user_agent: p.userAgent ?? null,
          })),
        },
        200,
      );
    })
    .openapi(resolve, async (c) => {
      const q = c.req.valid("query");
      const host = normalizeDomain(q.host.replace(/:\d+$/, ""));
      // The query string (`/x?variant=b`) decides Query() A/B rules; Traefik routes on the path alone.
      const [rawPath = "", queryString] = splitQuery(q.path);
      const path = rawPath.startsWith("/") ? rawPath : `/${rawPath}`;
      const scheme = q.scheme;
      // Traefik matches PathPrefix on the decoded path, except upper-case reserved escapes (routingPath).
      const routed = routingPath(path);
      if (routed === undefined) {
        return c.json(
          {
            host,
            path,
            scheme,
            matched: false,
            outcome: 400,
            reason: `${path} has a malformed %XX escape: Traefik answers 400 before routing.`,
            candidates: [],
          },
          200,
        );
      }
      const snap = await loadSnapshot(db);
      const parsed = parsedTraffic(snap.traffic);
      // As rendered: a route whose deployment's traffic settings do not validate is skipped (render.ts).
      const valid = snap.routes.filter((r) => checkRoute(r) === undefined && parsed.get(r.deploymentId) !== null);
      const candidates = valid
        .filter((r) => hostMatches(r.domain, host) && routed.startsWith(r.pathPrefix))
        .map((r) => ({
          route_id: r.id,
          deployment_id: r.deploymentId,
          domain: r.domain,
          path_prefix: r.pathPrefix,
          priority: priorityFor(r.domain, r.pathPrefix),
          ssl_enabled: r.sslEnabled,
        }))
        .sort((a, b) => b.priority - a.priority);
      // Every route has a router on both entry points with the same rule and priority (serving on its own scheme,
      // redirecting on the other), so the same route wins for http and https.
      const route = matchRoute(valid, host, routed);
      if (!route) {
        const sameHost = valid.filter((r) => hostMatches(r.domain, host)).length;
        return c.json(
          {
            host,
            path,
            scheme,
            matched: false,
            outcome: 404,
            reason:
              sameHost > 0
                ? `${sameHost} route(s) claim ${host}, but none has a path prefix that ${path} starts with: Traefik answers 404.`
                : `No route claims ${host}: Traefik answers 404. Add it with POST /api/v1/deployments/{id}/domains.`,
            candidates,
          },
          200,
        );
      }
      const up = snap.replicas.filter(
        (r) => r.deploymentId === route.deploymentId && r.status === "running" && r.healthStatus === "healthy",
      );
      const traffic = parsed.get(route.deploymentId) ?? {};
      const viaProxy = route.loadBalancerAlgo === "least-conn" && config.FALLBACK_ENABLED;
      // Without a split or geo routing only `stable` replicas get traffic (src/render/traffic.ts).
      const healthy = traffic.split || traffic.geo ? up.length : inTrack(up, STABLE_TRACK).length;
      const kind = route.domain.startsWith("*.") ? `wildcard ${route.domain}` : `exact host ${route.domain}`;
      const beat = candidates.length - 1;
      const priority = priorityFor(route.domain, route.pathPrefix);
      const served = route.sslEnabled ? "https" : "http";
      const name = routeName(route);
      const why =
        `${kind} with path prefix ${route.pathPrefix} (priority ${priority})` +
        (beat > 0 ? ` beat ${beat} other matching route(s)` : " is the only matching route");
      const common = {
        host,
        path,
        scheme,
        matched: true,
        deployment_id: route.deploymentId,
        route_id: route.id,
        rule: ruleFor(route.domain, route.pathPrefix),
        priority,
        healthy_replicas: healthy,
        candidates,
      };
      if (scheme !== served) {
        // redirectScheme answers GET with 301 when permanent (to https), else 302 (traefik v3.7.9
        // pkg/middlewares/redirect/redirect.go, moveHandler).
        const redirectTo = `${served}://${host}${path}`;
        return c.json(
          {
            ...common,
            serves: false,
            outcome: served === "https" ? 301 : 302,
            router: served === "https" ? redirectRouterName(name) : toHttpRouterName(name),
            entry_point: scheme === "https" ? config.ENTRYPOINT_WEBSECURE : config.ENTRYPOINT_WEB,
            redirect_to: redirectTo,
            reason: `${why}; it is served over ${served} only, so Traefik redirects to ${redirectTo}.`,
          },
          200,
        );
      }
      const entryPoint = scheme === "https" ? config.ENTRYPOINT_WEBSECURE : config.ENTRYPOINT_WEB;
      if (!viaProxy && traffic.split) {
        const facts = requestFacts(q.header, q.cookie, queryString);
        const x = explainSplit(serviceOf(snap, route, settings), traffic.split, up, facts);
        const router = x.suffix ? `${name}--${x.suffix}` : name;
        const serving = x.via !== "none";
        return c.json(
          {
            ...common,
            ...(x.match
              ? { rule: `${common.rule} && ${x.match}`, priority: priorityFor(route.domain, route.pathPrefix, x.rank) }
              : {}),
            serves: true,
            outcome: serving ? 200 : 503,
            router,
            entry_point: entryPoint,
            redirect_to: null,
            reason: `${why}; traffic split: ${x.reason}.`,
            traffic: {
              kind: "split" as const,
              via: x.via,
              router,
              service: x.service,
              track: x.via === "rule" ? (x.track ?? null) : null,
              rule_index: x.ruleIndex ?? null,
              weights: x.shares,
              sticky: traffic.split.sticky !== undefined,
              mirror: x.mirror
                ? { track: x.mirror.track, percent: x.mirror.percent, max_body_bytes: x.mirror.maxBodyBytes }
                : null,
              reason: x.reason,
            },
          },
          200,
        );
      }
      if (!viaProxy && traffic.geo) {
        const headerCountry = requestFacts(q.header, undefined, undefined).headers.get(
          traffic.geo.header.toLowerCase(),
        );
        // Traefik's HeaderRegexp matches when any value of the header does (pkg/muxer/http/matcher.go): so do we.
        const geo = traffic.geo;
        const country =
          q.country ?? headerCountry?.find((v) => explainGeo(geo, v, []).routerRegion) ?? headerCountry?.[0];
        const g = explainGeo(geo, country, up);
        // A mapped country is matched by its region's router (one rank above the route's); others by the route's own.
        const router = g.routerRegion ? `${name}--${regionRouterSuffix(g.routerRegion)}` : name;
        const deploymentService = serviceOf(snap, route, settings);
        const service = g.routerRegion ? regionServiceName(deploymentService, g.routerRegion) : deploymentService;
        return c.json(
          {
            ...common,
            ...(g.routerRegion
              ? {
                  rule: `${common.rule} && ${countryMatch(geo.header, geo.regions[g.routerRegion] ?? [])}`,
                  priority: priorityFor(route.domain, route.pathPrefix, 1),
                }
              : {}),
            serves: true,
            outcome: g.served === undefined ? 503 : 200,
            router,
            entry_point: entryPoint,
            redirect_to: null,
            reason: `${why}; geo routing: ${g.reason}.`,
            traffic: {
              kind: "geo" as const,
              via: g.served === undefined ? ("none" as const) : ("region" as const),
              router,
              service,
              track: null,
              rule_index: null,
              weights: [],
              sticky: false,
              mirror: null,
              geo: { mapped: g.mapped, served: g.served ?? null, reason: g.reason },
              reason: g.reason,
            },
          },
          200,
        );
      }
      return c.json(
        {
          ...common,
          serves: true,
          outcome: healthy > 0 ? 200 : 503,
          router: name,
          entry_point: entryPoint,
          redirect_to: null,
          reason:
            why + (healthy > 0 ? `; ${healthy} healthy replica(s).` : "; no healthy replica, so Traefik answers 503."),
        },
        200,
      );
    });
}
