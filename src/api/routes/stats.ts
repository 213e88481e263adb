import { createRoute } from "@hono/zod-openapi";
import { listCertificates } from "../../db/repo/certificates.js";
import { countDeployments } from "../../db/repo/deployments.js";
import { countReplicasByHealth } from "../../db/repo/locations.js";
import { countRevisionsSince } from "../../db/repo/revisions.js";
import { loadSnapshot } from "../../db/repo/snapshot.js";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import { SUMMARY_NAMES } from "../../provider/revisions.js";
import { redirectRouterName, routeName, toHttpRouterName } from "../../render/names.js";
import { checkRoute } from "../../render/render.js";
import { hostMatches, matchRoute, priorityFor, routingPath, ruleFor } from "../../render/rules.js";
import { expiringSoon } from "../../tls/expiry.js";
import { contracts, json, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { normalizeDomain, ResolutionView, ResolveQuery, StatsView } from "../schemas.js";

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
export function statsApi({ handle: { db }, cache, pollers, clock, config }: Deps) {
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
                bytes: cfg.json.length,
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
      const path = q.path.startsWith("/") ? q.path : `/${q.path}`;
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
      const valid = snap.routes.filter((r) => checkRoute(r) === undefined);
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
      const healthy = snap.replicas.filter(
        (r) => r.deploymentId === route.deploymentId && r.status === "running" && r.healthStatus === "healthy",
      ).length;
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
      return c.json(
        {
          ...common,
          serves: true,
          outcome: healthy > 0 ? 200 : 503,
          router: name,
          entry_point: scheme === "https" ? config.ENTRYPOINT_WEBSECURE : config.ENTRYPOINT_WEB,
          redirect_to: null,
          reason:
            why + (healthy > 0 ? `; ${healthy} healthy replica(s).` : "; no healthy replica, so Traefik answers 503."),
        },
        200,
      );
    });
}
