import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { RoutingRow } from "../../../schema/tables.js";
import { Conflict, NotFound } from "../../db/errors.js";
import { getDeployment } from "../../db/repo/deployments.js";
import { claimedElsewhere, domainRoutes, markVerified } from "../../db/repo/domain-verification.js";
import { domainConflict } from "../../db/repo/route-ownership.js";
import { addDomain, listRoutes, putPrimaryRouting, removeDomain } from "../../db/repo/routing.js";
import { challengeName, challengeRecord } from "../../domains/challenge.js";
import { domainProof, lookupChallenge } from "../../domains/verification.js";
import { defaultResolverFor } from "../../provider/settings.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { AppEnv, Deps } from "../deps.js";
import { domainWarnings } from "../domain-policy.js";
import { HttpProblem, problem } from "../problem.js";
import {
  AddDomainBody,
  AddedDomainView,
  DeleteDomainQuery,
  DeploymentParams,
  DomainParams,
  DomainWithDnsView,
  Items,
  Problem,
  PutRoutingBody,
  RoutingChangeView,
  RoutingView,
  VerifiedDomainView,
  VerifyDomainQuery,
} from "../schemas.js";
import { allowsDeployment } from "../scopes.js";
import { camelize, routeDnsRecords, routeView, routingView, verificationView } from "../views.js";

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

const problemOf = (description: string) => ({
  description: `${description} (RFC 9457 problem details)`,
  content: { "application/problem+json": { schema: Problem } },
});

const verifyDomain = createRoute({
  method: "post",
  path: "/{id}/domains/{domain}/verify",
  summary: "Prove ownership of a pending domain (its _obiente-challenge TXT record)",
  description:
    "Looks up `TXT _obiente-challenge.<domain>` (a wildcard `*.example.com` is proven at `example.com`) and marks " +
    "the deployment's pending routes of the domain (every path, or ?path_prefix=) verified when a record equals " +
    "their token: they are routed from then on. 409 DOMAIN_CONFLICT when another deployment verified the " +
    "(domain, path) first; 422 DOMAIN_NOT_VERIFIED when the record is missing or holds another value.",
  security: WRITE,
  request: { params: DomainParams, query: VerifyDomainQuery },
  responses: {
    200: json(VerifiedDomainView, "Verified (or it already was)"),
    ...problems(400, 401, 404, 409),
    422: problemOf("The TXT record does not hold the token (yet): `expected` and `found` say what was looked for"),
    502: problemOf("The TXT lookup failed (SERVFAIL, timeout): nothing was decided; retry"),
  },
});

/** Found TXT values, as public DNS shows them, kept short: a name can hold many records. */
const shown = (records: string[]) => records.slice(0, 10).map((v) => (v.length > 255 ? `${v.slice(0, 255)}…` : v));

/** 422 DOMAIN_NOT_VERIFIED: the record to create (`expected`) and what DNS holds now (`found`). */
function notVerified(domain: string, pending: RoutingRow[], records: string[]) {
  const name = challengeName(domain);
  const expected = [...new Set(pending.map((r) => r.verificationToken ?? ""))].map((t) => challengeRecord(domain, t));
  const found = shown(records);
  const holds =
    found.length === 0
      ? "no TXT record"
      : `no TXT record equal to the token (found: ${found.map((v) => JSON.stringify(v)).join(", ")})`;
  return problem(
    "DOMAIN_NOT_VERIFIED",
    `${name} has ${holds}. Create TXT ${name} = ${expected[0]?.value ?? ""}, then verify again (DNS changes can take a while to show).`,
    { extra: { expected, found } },
  );
}

/**
 * A deployment-restricted token is not told which other deployment owns a domain (restricted tokens get 404 for
 * other deployments, so their ids do not leak): the 409 then says "another deployment".
 */
function hideForeignOwner(c: Context<AppEnv>, err: unknown): unknown {
  if (!(err instanceof Conflict) || err.code !== "DOMAIN_CONFLICT") {
    return err;
  }
  const owner = err.details.owner_deployment_id;
  const restriction = c.get("caller")?.restriction;
  if (typeof owner !== "string" || allowsDeployment(restriction, owner)) {
    return err;
  }
  const { domain, path_prefix } = err.details as { domain: string; path_prefix: string };
  return domainConflict(domain, path_prefix, undefined, "");
}

/** Routing and custom domains of one deployment: `/deployments/:id/routing` and `/deployments/:id/domains`. */
export function routingApi({ handle: { db }, config, clock, resolveTxt }: Deps) {
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
  const proof = () => domainProof(config, clock.now());
  const guarded = async <T>(c: Context<AppEnv>, write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (err) {
      throw hideForeignOwner(c, err);
    }
  };
  /** A domain's routes after a verify; its `verification` is the one still pending, else the latest proof. */
  const verifiedView = (domain: string, routes: RoutingRow[]) => {
    const [first] = routes;
    const shownAs = routes.find((r) => r.verification === "pending") ?? routes.find((r) => r.verifiedAt) ?? first;
    return {
      domain,
      verification: shownAs ? verificationView(shownAs) : { status: "verified" as const, verified_at: null },
      routes: routes.map(routeView),
    };
  };
  return contracts()
    .openapi(getRouting, async (c) => c.json(await show(c.req.valid("param").id), 200))
    .openapi(putRouting, async (c) => {
      const { id } = c.req.valid("param");
      const b = c.req.valid("json");
      await guarded(c, () => putPrimaryRouting(db, id, camelize(b), defaultResolver, proof()));
      const warnings = b.domain ? domainWarnings(b.domain) : [];
      return c.json({ ...(await show(id)), ...(warnings.length > 0 ? { warnings } : {}) }, 200);
    })
    .openapi(listDomains, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      const items = (await listRoutes(db, id)).map((r) => ({
        ...routeView(r),
        dns_records: routeDnsRecords(r, dnsTargets),
      }));
      return c.json({ items }, 200);
    })
    .openapi(postDomain, async (c) => {
      const { id } = c.req.valid("param");
      const input = camelize(c.req.valid("json"));
      const { route, created } = await guarded(c, () => addDomain(db, id, input, defaultResolver, proof()));
      const warnings = domainWarnings(route.domain); // accepted, but may imitate another name
      const body = {
        route: routeView(route),
        verification: verificationView(route),
        dns_records: routeDnsRecords(route, dnsTargets),
        ...(warnings.length > 0 ? { warnings } : {}),
      };
      return created ? c.json(body, 201) : c.json(body, 200);
    })
    .openapi(deleteDomain, async (c) => {
      const { id, domain } = c.req.valid("param");
      await removeDomain(db, id, domain, c.req.valid("query").path_prefix);
      return c.body(null, 204);
    })
    .openapi(verifyDomain, async (c) => {
      const { id, domain } = c.req.valid("param");
      const { path_prefix: pathPrefix } = c.req.valid("query");
      await getDeployment(db, id);
      const now = clock.now();
      const routes = await domainRoutes(db, id, domain, pathPrefix, now);
      if (routes.length === 0) {
        throw new NotFound("domain", pathPrefix ? `${domain} ${pathPrefix}` : domain);
      }
      const pending = routes.filter((r) => r.verification === "pending");
      if (pending.length === 0) {
        c.set("configUnchanged", true);
        return c.json(verifiedView(domain, routes), 200); // already verified: nothing to do
      }
      // Taken by a deployment that proved ownership first: no lookup can change that.
      const lost = await claimedElsewhere(db, pending);
      if (lost) {
        throw hideForeignOwner(c, domainConflict(lost.route.domain, lost.route.pathPrefix, lost.ownerId, id));
      }
      // No proof asked for this name any more (DOMAIN_VERIFICATION=off now, or it joined PLATFORM_DOMAINS).
      if (!proof()?.needed(domain)) {
        await guarded(c, () => markVerified(db, pending, now));
        return c.json(verifiedView(domain, await domainRoutes(db, id, domain, pathPrefix, now)), 200);
      }
      const name = challengeName(domain);
      const answer = await lookupChallenge(resolveTxt, domain);
      if (!answer.ok) {
        throw new HttpProblem(
          problem("DNS_LOOKUP_FAILED", `The TXT lookup of ${name} failed (${answer.reason}); try again later.`, {
            extra: { record: { type: "TXT", name }, reason: answer.reason },
          }),
        );
      }
      const proven = pending.filter((r) => r.verificationToken && answer.records.includes(r.verificationToken));
      if (proven.length === 0) {
        throw new HttpProblem(notVerified(domain, pending, answer.records));
      }
      await guarded(c, () => markVerified(db, proven, now));
      return c.json(verifiedView(domain, await domainRoutes(db, id, domain, pathPrefix, now)), 200);
    });
}
