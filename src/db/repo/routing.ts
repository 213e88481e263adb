import { and, asc, desc, eq, lte, ne, type SQL } from "drizzle-orm";
import type { LbAlgo, Protocol } from "../../../schema/enums.js";
import { deploymentRouting, deployments, type RoutingRow } from "../../../schema/tables.js";
import { defaultSslEnabled, isReservedName } from "../../render/reserved.js";
import type { Db, Tx } from "../client.js";
import { Conflict, Invalid, isUniqueViolation, NotFound } from "../errors.js";
import { newId } from "../ids.js";
import {
  assertUnclaimed,
  conflictAfterUniqueViolation,
  type DomainProof,
  nextPrimary,
  ownRoute,
  verificationFor,
} from "./route-ownership.js";
import { getTraffic } from "./traffic.js";

export interface RoutingPatch {
  domain?: string | undefined;
  pathPrefix?: string | undefined;
  targetPort?: number | undefined;
  protocol?: Protocol | undefined;
  loadBalancerAlgo?: LbAlgo | undefined;
  sslEnabled?: boolean | undefined;
  sslCertResolver?: string | undefined;
  tlsIncludeApex?: boolean | undefined;
}

export interface NewDomain {
  domain: string;
  pathPrefix: string;
  targetPort?: number | undefined;
  sslEnabled?: boolean | undefined;
  sslCertResolver?: string | undefined;
  tlsIncludeApex?: boolean | undefined;
}

/** Every route of a deployment, primary first, then oldest first. */
export async function listRoutes(db: Db, deploymentId: string): Promise<RoutingRow[]> {
  return db
    .select()
    .from(deploymentRouting)
    .where(eq(deploymentRouting.deploymentId, deploymentId))
    .orderBy(desc(deploymentRouting.isPrimary), asc(deploymentRouting.createdAt), asc(deploymentRouting.id));
}

/** Every routed route (pending ones, waiting for proof of ownership, are not routed). */
export async function listAllRoutes(db: Db): Promise<RoutingRow[]> {
  return db
    .select()
    .from(deploymentRouting)
    .where(eq(deploymentRouting.verification, "verified"))
    .orderBy(asc(deploymentRouting.id));
}

/** Locks the deployment row (FOR UPDATE): only meaningful inside a transaction. */
async function assertDeployment(tx: Tx, id: string): Promise<void> {
  const [row] = await tx.select({ id: deployments.id }).from(deployments).where(eq(deployments.id, id)).for("update");
  if (!row) {
    throw new NotFound("deployment", id);
  }
}

/** Runs a write; a unique violation on (domain, path_prefix) becomes DOMAIN_CONFLICT naming the owner. */
async function withDomainConflict<T>(
  db: Db,
  domain: string,
  pathPrefix: string,
  deploymentId: string,
  write: () => Promise<T>,
): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (!isUniqueViolation(err)) {
      throw err;
    }
    throw await conflictAfterUniqueViolation(db, domain, pathPrefix, deploymentId);
  }
}

/**
 * `least-conn` routes go through the fallback proxy, which balances one pool by CPU and knows no tracks or regions:
 * a deployment with a split or geo routing cannot switch to it (the split and geo APIs refuse the reverse).
 */
async function refuseLeastConnWithTraffic(t: Db, deploymentId: string): Promise<void> {
  const traffic = await getTraffic(t, deploymentId);
  const part = traffic.split ? "a traffic split" : traffic.geo ? "geographic routing" : undefined;
  if (part) {
    throw new Conflict(
      `Deployment ${deploymentId} has ${part}, which least-conn (balanced by the fallback proxy) cannot honour: remove it first (DELETE …/${traffic.split ? "split" : "geo"}).`,
      "TRAFFIC_CONFLICT",
      { deployment_id: deploymentId, conflicts_with: traffic.split ? "split" : "geo" },
    );
  }
}

/**
 * Creates or updates the primary route. `target_port`, `protocol` and `load_balancer_algo` describe the app and
 * apply to every route of the deployment; domain, path and TLS settings apply to the primary route only. With a
 * `proof`, a new domain that needs one makes the primary pending (not rendered) until it is verified.
 */
export async function putPrimaryRouting(
  db: Db,
  deploymentId: string,
  patch: RoutingPatch,
  defaultResolver: (domain: string) => string,
  proof?: DomainProof,
): Promise<void> {
  const domain = patch.domain;
  const run = () =>
    db.transaction(async (t) => {
      await assertDeployment(t, deploymentId);
      const [primary] = await t
        .select()
        .from(deploymentRouting)
        .where(and(eq(deploymentRouting.deploymentId, deploymentId), eq(deploymentRouting.isPrimary, true)));
      const now = new Date();
      const appWide = pick(patch, ["targetPort", "protocol", "loadBalancerAlgo"]);
      if (appWide.loadBalancerAlgo === "least-conn") {
        await refuseLeastConnWithTraffic(t, deploymentId);
      }
      if (Object.keys(appWide).length > 0) {
        await t
          .update(deploymentRouting)
          .set({ ...appWide, updatedAt: now })
          .where(eq(deploymentRouting.deploymentId, deploymentId));
      }
      const own = pick(patch, ["domain", "pathPrefix", "sslEnabled", "sslCertResolver", "tlsIncludeApex"]);
      // A domain change that makes the route a wildcard (or not) moves a default resolver to the matching default.
      if (
        primary &&
        own.domain &&
        !own.sslCertResolver &&
        primary.sslCertResolver === defaultResolver(primary.domain)
      ) {
        own.sslCertResolver = defaultResolver(own.domain);
      }
      // Likewise for TLS: moving between a reserved name (`.localhost`, `.test`, …) and a public one flips a
      // default ssl_enabled to the new name's default; a value that differs from the default was chosen: kept.
      if (
        primary &&
        own.domain &&
        own.sslEnabled === undefined &&
        primary.sslEnabled === defaultSslEnabled(primary.domain)
      ) {
        own.sslEnabled = defaultSslEnabled(own.domain);
      }
      if (primary) {
        // A new name is proven anew (or needs no proof); the same name keeps its state, whatever the path.
        const renamed = own.domain !== undefined && own.domain !== primary.domain;
        const ver = renamed ? await verificationFor(t, deploymentId, own.domain ?? "", proof, primary.id) : {};
        const pending = renamed ? ver.verification === "pending" : primary.verification === "pending";
        if (pending && (renamed || own.pathPrefix !== undefined)) {
          await assertUnclaimed(t, deploymentId, own.domain ?? primary.domain, own.pathPrefix ?? primary.pathPrefix);
        }
        if (Object.keys(own).length > 0) {
          await t
            .update(deploymentRouting)
            .set({ ...own, ...ver, updatedAt: now })
            .where(eq(deploymentRouting.id, primary.id));
        }
        return;
      }
      if (!domain) {
        throw new Invalid("body.domain", "The deployment has no route yet: domain is required.");
      }
      const existing = await listRoutes(t, deploymentId);
      const targetPort = patch.targetPort ?? existing[0]?.targetPort;
      if (targetPort === undefined) {
        throw new Invalid("body.target_port", "The deployment has no route yet: target_port is required.");
      }
      const pathPrefix = patch.pathPrefix ?? "/";
      const ver = await verificationFor(t, deploymentId, domain, proof);
      if (ver.verification === "pending") {
        await assertUnclaimed(t, deploymentId, domain, pathPrefix);
      }
      await t.insert(deploymentRouting).values({
        id: newId("rt"),
        deploymentId,
        domain,
        pathPrefix,
        targetPort,
        protocol: patch.protocol ?? existing[0]?.protocol,
        loadBalancerAlgo: patch.loadBalancerAlgo ?? existing[0]?.loadBalancerAlgo,
        sslEnabled: patch.sslEnabled ?? defaultSslEnabled(domain),
        // The default applies to a new route only: a partial update must not reset a chosen resolver.
        sslCertResolver: patch.sslCertResolver ?? defaultResolver(domain),
        tlsIncludeApex: patch.tlsIncludeApex,
        isPrimary: true,
        ...ver,
      });
    });
  if (domain === undefined && patch.pathPrefix === undefined) {
    return run();
  }
  // For the 409 message: the (domain, path) the write would claim.
  const current = (await listRoutes(db, deploymentId)).find((r) => r.isPrimary);
  return withDomainConflict(
    db,
    domain ?? current?.domain ?? "",
    patch.pathPrefix ?? current?.pathPrefix ?? "/",
    deploymentId,
    run,
  );
}

/**
 * Adds a custom domain; it inherits port, protocol and algorithm from the primary route. With a `proof`, a domain
 * that needs one is stored pending (not rendered, claiming nothing) with the token its TXT record must hold.
 */
export async function addDomain(
  db: Db,
  deploymentId: string,
  input: NewDomain,
  defaultResolver: (domain: string) => string,
  proof?: DomainProof,
): Promise<{ route: RoutingRow; created: boolean }> {
  try {
    return await withDomainConflict(db, input.domain, input.pathPrefix, deploymentId, () =>
      db.transaction(async (t) => {
        await assertDeployment(t, deploymentId);
        if (proof) {
          // A pending route past its expiry is gone in all but name (the background job removes it): adding the
          // domain again starts over instead of answering with the expired route.
          await t
            .delete(deploymentRouting)
            .where(
              and(
                eq(deploymentRouting.deploymentId, deploymentId),
                eq(deploymentRouting.domain, input.domain),
                eq(deploymentRouting.pathPrefix, input.pathPrefix),
                eq(deploymentRouting.verification, "pending"),
                lte(deploymentRouting.verificationExpiresAt, proof.now),
                ne(deploymentRouting.isPrimary, true),
              ),
            );
        }
        const existing = await listRoutes(t, deploymentId);
        const primary = existing.find((r) => r.isPrimary);
        const targetPort = input.targetPort ?? primary?.targetPort;
        if (targetPort === undefined) {
          throw new Invalid(
            "body.target_port",
            "The deployment has no routing yet: give target_port or PUT …/routing first.",
          );
        }
        const ver = await verificationFor(t, deploymentId, input.domain, proof);
        if (ver.verification === "pending") {
          await assertUnclaimed(t, deploymentId, input.domain, input.pathPrefix);
        }
        const [route] = await t
          .insert(deploymentRouting)
          .values({
            id: newId("rt"),
            deploymentId,
            domain: input.domain,
            pathPrefix: input.pathPrefix,
            targetPort,
            protocol: primary?.protocol,
            loadBalancerAlgo: primary?.loadBalancerAlgo,
            // The primary's TLS choice is inherited by a name of its kind; between a reserved name and a public
            // one it says nothing (no CA issues for reserved names), so the new name's default applies.
            sslEnabled:
              input.sslEnabled ??
              (primary && isReservedName(primary.domain) === isReservedName(input.domain)
                ? primary.sslEnabled
                : defaultSslEnabled(input.domain)),
            // A wildcard needs a DNS-01 resolver, so it never inherits the primary's (likely HTTP-01) one.
            sslCertResolver:
              input.sslCertResolver ??
              (input.domain.startsWith("*.")
                ? defaultResolver(input.domain)
                : (primary?.sslCertResolver ?? defaultResolver(input.domain))),
            tlsIncludeApex: input.tlsIncludeApex ?? false,
            isPrimary: !primary,
            ...ver,
          })
          .returning();
        if (!route) {
          throw new Error("insert returned no row");
        }
        return { route, created: true };
      }),
    );
  } catch (err) {
    // Adding a domain the deployment already has is idempotent: answer with the existing route.
    if (err instanceof Conflict && err.details.owner_deployment_id === deploymentId) {
      const route = await ownRoute(db, deploymentId, input.domain, input.pathPrefix);
      if (route) {
        return { route, created: false };
      }
    }
    throw err;
  }
}

/** Removes a domain (one path, or all its paths); a removed primary hands over to the oldest remaining route. */
export async function removeDomain(db: Db, deploymentId: string, domain: string, pathPrefix?: string): Promise<number> {
  return db.transaction(async (t) => {
    await assertDeployment(t, deploymentId);
    const conds: SQL[] = [eq(deploymentRouting.deploymentId, deploymentId), eq(deploymentRouting.domain, domain)];
    if (pathPrefix !== undefined) {
      conds.push(eq(deploymentRouting.pathPrefix, pathPrefix));
    }
    const gone = await t
      .delete(deploymentRouting)
      .where(and(...conds))
      .returning();
    if (gone.length === 0) {
      throw new NotFound("domain", pathPrefix ? `${domain} ${pathPrefix}` : domain);
    }
    if (gone.some((r) => r.isPrimary)) {
      const next = nextPrimary(await listRoutes(t, deploymentId));
      if (next) {
        await t
          .update(deploymentRouting)
          .set({ isPrimary: true, updatedAt: new Date() })
          .where(eq(deploymentRouting.id, next.id));
      }
    }
    return gone.length;
  });
}

function pick<T extends object, K extends keyof T>(obj: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) {
    if (obj[k] !== undefined) {
      out[k] = obj[k];
    }
  }
  return out;
}
