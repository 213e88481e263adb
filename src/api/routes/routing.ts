import { Hono } from "hono";
import { getDeployment } from "../../db/repo/deployments.js";
import { addDomain, listRoutes, putPrimaryRouting, removeDomain } from "../../db/repo/routing.js";
import type { AppEnv, Deps } from "../app.js";
import { domainWarnings } from "../domain-policy.js";
import { AddDomainBody, DeleteDomainQuery, DeploymentId, DomainName, PutRoutingBody } from "../schemas.js";
import { parseBody, parseParam, parseQuery } from "../validate.js";
import { dnsRecords, routeView, routingView } from "../views.js";

/** Routing and custom domains of one deployment: `/deployments/:id/routing` and `/deployments/:id/domains`. */
export function routingApi({ handle, cache, config }: Deps) {
  const { db } = handle;
  const dnsTargets = {
    ipv4: config.PUBLIC_IPS.filter((ip) => !ip.includes(":")),
    ipv6: config.PUBLIC_IPS.filter((ip) => ip.includes(":")),
    cname: config.PUBLIC_CNAME_TARGET,
  };
  const show = async (id: string) => {
    await getDeployment(db, id); // 404 for an unknown deployment, even with no routes
    return routingView(id, await listRoutes(db, id));
  };
  const defaultResolver = (domain: string) =>
    domain.startsWith("*.") ? config.DEFAULT_WILDCARD_CERT_RESOLVER : config.DEFAULT_CERT_RESOLVER;
  return new Hono<AppEnv>()
    .get("/:id/routing", async (c) => c.json(await show(parseParam(c, "id", DeploymentId))))
    .put("/:id/routing", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const b = await parseBody(c, PutRoutingBody);
      await putPrimaryRouting(
        db,
        id,
        {
          domain: b.domain,
          pathPrefix: b.path_prefix,
          targetPort: b.target_port,
          protocol: b.protocol,
          loadBalancerAlgo: b.load_balancer_algo as "round-robin" | "least-conn" | "ip-hash" | undefined,
          sslEnabled: b.ssl_enabled,
          sslCertResolver: b.ssl_cert_resolver,
          tlsIncludeApex: b.tls_include_apex,
        },
        defaultResolver,
      );
      cache.invalidate();
      const warnings = b.domain ? domainWarnings(b.domain) : [];
      return c.json({ ...(await show(id)), ...(warnings.length > 0 ? { warnings } : {}) });
    })
    .get("/:id/domains", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      await getDeployment(db, id);
      return c.json({
        items: (await listRoutes(db, id)).map((r) => ({
          ...routeView(r),
          dns_records: dnsRecords(r.domain, dnsTargets),
        })),
      });
    })
    .post("/:id/domains", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const b = await parseBody(c, AddDomainBody);
      const { route, created } = await addDomain(
        db,
        id,
        {
          domain: b.domain,
          pathPrefix: b.path_prefix,
          targetPort: b.target_port,
          sslEnabled: b.ssl_enabled,
          sslCertResolver: b.ssl_cert_resolver,
          tlsIncludeApex: b.tls_include_apex,
        },
        defaultResolver,
      );
      cache.invalidate();
      const warnings = domainWarnings(route.domain); // accepted, but may imitate another name
      return c.json(
        {
          route: routeView(route),
          dns_records: dnsRecords(route.domain, dnsTargets),
          ...(warnings.length > 0 ? { warnings } : {}),
        },
        created ? 201 : 200,
      );
    })
    .delete("/:id/domains/:domain", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const domain = parseParam(c, "domain", DomainName);
      const { path_prefix } = parseQuery(c, DeleteDomainQuery);
      await removeDomain(db, id, domain, path_prefix);
      cache.invalidate();
      return c.body(null, 204);
    });
}
