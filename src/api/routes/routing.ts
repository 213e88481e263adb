import { createRoute } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { addDomain, listRoutes, putPrimaryRouting, removeDomain } from "../../db/repo/routing.js";
import { defaultResolverFor } from "../../provider/settings.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { domainWarnings } from "../domain-policy.js";
import {
  AddDomainBody,
  AddedDomainView,
  DeleteDomainQuery,
  DeploymentParams,
  DomainParams,
  DomainWithDnsView,
  Items,
  PutRoutingBody,
  RoutingChangeView,
  RoutingView,
} from "../schemas.js";
import { camelize, dnsRecords, routeView, routingView } from "../views.js";

const getRouting = createRoute({
  method: "get",
  path: "/{id}/routing",
  summary: "Primary routing and every domain",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(RoutingView, "Routing"), ...problems(400, 401, 404) },
});

const putRouting = createRoute({
  method: "put",
  path: "/{id}/routing",
  summary: "Create or update the primary route (partial)",
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(PutRoutingBody) },
  responses: { 200: json(RoutingChangeView, "Routing after the change"), ...problems(...BODY_PROBLEMS, 404, 409) },
});

const listDomains = createRoute({
  method: "get",
  path: "/{id}/domains",
  summary: "List domains with DNS records",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(Items(DomainWithDnsView), "Domains"), ...problems(400, 401, 404) },
});

const postDomain = createRoute({
  method: "post",
  path: "/{id}/domains",
  summary: "Add a custom domain",
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(AddDomainBody) },
  responses: {
    201: json(AddedDomainView, "Created"),
    200: json(AddedDomainView, "The deployment already had it: the existing route"),
    ...problems(...BODY_PROBLEMS, 404, 409),
  },
});

const deleteDomain = createRoute({
  method: "delete",
  path: "/{id}/domains/{domain}",
  summary: "Remove a domain (all paths, or ?path_prefix=)",
  security: WRITE,
  request: { params: DomainParams, query: DeleteDomainQuery },
  responses: { 204: { description: "Removed" }, ...problems(400, 401, 404) },
});

/** Routing and custom domains of one deployment: `/deployments/:id/routing` and `/deployments/:id/domains`. */
export function routingApi({ handle: { db }, config }: Deps) {
  const dnsTargets = {
    ipv4: config.PUBLIC_IPS.filter((ip) => !ip.includes(":")),
    ipv6: config.PUBLIC_IPS.filter((ip) => ip.includes(":")),
    cname: config.PUBLIC_CNAME_TARGET,
  };
  const show = async (id: string) => {
    await getDeployment(db, id); // 404 for an unknown deployment, even with no routes
    return routingView(id, await listRoutes(db, id));
  };
  const defaultResolver = defaultResolverFor(config);
  return contracts()
    .openapi(getRouting, async (c) => c.json(await show(c.req.valid("param").id), 200))
    .openapi(putRouting, async (c) => {
      const { id } = c.req.valid("param");
      const b = c.req.valid("json");
      await putPrimaryRouting(db, id, camelize(b), defaultResolver);
      const warnings = b.domain ? domainWarnings(b.domain) : [];
      return c.json({ ...(await show(id)), ...(warnings.length > 0 ? { warnings } : {}) }, 200);
    })
    .openapi(listDomains, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      const items = (await listRoutes(db, id)).map((r) => ({
        ...routeView(r),
        dns_records: dnsRecords(r.domain, dnsTargets),
      }));
      return c.json({ items }, 200);
    })
    .openapi(postDomain, async (c) => {
      const { id } = c.req.valid("param");
      const { route, created } = await addDomain(db, id, camelize(c.req.valid("json")), defaultResolver);
      const warnings = domainWarnings(route.domain); // accepted, but may imitate another name
      const body = {
        route: routeView(route),
        dns_records: dnsRecords(route.domain, dnsTargets),
        ...(warnings.length > 0 ? { warnings } : {}),
      };
      return created ? c.json(body, 201) : c.json(body, 200);
    })
    .openapi(deleteDomain, async (c) => {
      const { id, domain } = c.req.valid("param");
      await removeDomain(db, id, domain, c.req.valid("query").path_prefix);
      return c.body(null, 204);
    });
}
