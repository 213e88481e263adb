import { and, asc, eq, gt, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { deploymentRouting, deployments, type RoutingRow } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { isUniqueViolation } from "../errors.js";
import { type NewEvent, recordEvents } from "./events.js";
import { domainConflict, nextPrimary, routeOwner } from "./route-ownership.js";
import { listRoutes } from "./routing.js";

// Domain ownership verification (DOMAIN_VERIFICATION=required): the pending routes' life after they are added.
// A pending route is never rendered and claims nothing; marking it verified claims its (domain, path) through the
// partial unique index, so of several deployments waiting on one name the first to prove ownership gets it.

/**
 * Bookkeeping that renders nothing (a pending route's next check, its attempts): the change trigger stays silent
 * for the rest of the transaction, as it does for a preview (migration 0006), so no instance re-renders for it.
 */
async function quietly(tx: Db): Promise<void> {
  await tx.execute(sql`select set_config('obiente.preview', 'on', true)`);
}

const pendingAlive = (now: Date) =>
  or(
    eq(deploymentRouting.verification, "verified"),
    isNull(deploymentRouting.verificationExpiresAt),
    gt(deploymentRouting.verificationExpiresAt, now),
  );

/**
 * A deployment's routes of `domain` (on one path, or on every path), primary first; a pending route past its
 * expiry is left out: it is gone as far as anyone can tell (the background job deletes it).
 */
export async function domainRoutes(
  db: Db,
  deploymentId: string,
  domain: string,
  pathPrefix: string | undefined,
  now: Date,
): Promise<RoutingRow[]> {
  const routes = await listRoutes(db, deploymentId);
  return routes.filter(
    (r) =>
      r.domain === domain &&
      (pathPrefix === undefined || r.pathPrefix === pathPrefix) &&
      (r.verification === "verified" || r.verificationExpiresAt === null || r.verificationExpiresAt > now),
  );
}

/**
 * Flips pending routes to verified, claiming their (domain, path), and records `domain.verified` for each, in one
 * transaction. When another deployment verified one of them first (the unique index says so), nothing is changed
 * and DOMAIN_CONFLICT names the owner.
 */
export async function markVerified(db: Db, routes: readonly RoutingRow[], now: Date): Promise<RoutingRow[]> {
  if (routes.length === 0) {
    return [];
  }
  try {
    return await db.transaction(async (t) => {
      const done = await t
        .update(deploymentRouting)
        .set({
          verification: "verified",
          verifiedAt: now,
          verificationToken: null,
          verificationExpiresAt: null,
          verificationNextCheckAt: null,
          updatedAt: now,
        })
        .where(
          and(
            inArray(
              deploymentRouting.id,
              routes.map((r) => r.id),
            ),
            eq(deploymentRouting.verification, "pending"),
            pendingAlive(now),
          ),
        )
        .returning();
      await recordEvents(t, domainEvents("domain.verified", done));
      return done;
    });
  } catch (err) {
    const first = routes[0];
    if (!isUniqueViolation(err) || !first) {
      throw err;
    }
    // Which one lost: the route whose (domain, path) another deployment has verified meanwhile.
    const lost = await claimedElsewhere(db, routes);
    const r = lost?.route ?? first;
    throw domainConflict(r.domain, r.pathPrefix, lost?.ownerId, r.deploymentId);
  }
}

/** The first route of `routes` whose (domain, path) another deployment has verified, with that owner. */
export async function claimedElsewhere(
  db: Db,
  routes: readonly RoutingRow[],
): Promise<{ route: RoutingRow; ownerId: string } | undefined> {
  for (const route of routes) {
    const owner = await routeOwner(db, route.domain, route.pathPrefix);
    if (owner && owner.deploymentId !== route.deploymentId) {
      return { route, ownerId: owner.deploymentId };
    }
  }
  return undefined;
}

/**
 * Claims up to `limit` pending routes due for a check (FOR UPDATE SKIP LOCKED: several instances share the work)
 * and pushes their next check out by `leaseMs`, so no other instance takes them while this one looks them up.
 */
export async function claimDuePending(db: Db, now: Date, limit: number, leaseMs: number): Promise<RoutingRow[]> {
  return db.transaction(async (t) => {
    await quietly(t);
    const due = await t
      .select()
      .from(deploymentRouting)
      .where(
        and(
          eq(deploymentRouting.verification, "pending"),
          lte(deploymentRouting.verificationNextCheckAt, now),
          gt(deploymentRouting.verificationExpiresAt, now),
        ),
      )
      .orderBy(asc(deploymentRouting.verificationNextCheckAt), asc(deploymentRouting.id))
      .limit(limit)
      .for("update", { skipLocked: true });
    if (due.length === 0) {
      return [];
    }
    await t
      .update(deploymentRouting)
      .set({ verificationNextCheckAt: new Date(now.getTime() + leaseMs) })
      .where(
        inArray(
          deploymentRouting.id,
          due.map((r) => r.id),
        ),
      );
    return due;
  });
}

/** A check that found no matching record: one more attempt, the next one at `nextCheckAt`. */
export async function backOffPending(db: Db, id: string, attempts: number, nextCheckAt: Date): Promise<void> {
  await db.transaction(async (t) => {
    await quietly(t);
    await t
      .update(deploymentRouting)
      .set({ verificationAttempts: attempts, verificationNextCheckAt: nextCheckAt })
      .where(and(eq(deploymentRouting.id, id), eq(deploymentRouting.verification, "pending")));
  });
}

/**
 * Deletes up to `limit` pending routes past their expiry and records `domain.expired` for each; a deleted primary
 * hands over to the deployment's oldest verified route (else its oldest). Deployments locked by a write (or by
 * another instance's round) are skipped until the next round.
 */
export async function expirePending(db: Db, now: Date, limit: number): Promise<RoutingRow[]> {
  const expired = and(eq(deploymentRouting.verification, "pending"), lte(deploymentRouting.verificationExpiresAt, now));
  return db.transaction(async (t) => {
    const candidates = await t
      .select({ id: deploymentRouting.id, deploymentId: deploymentRouting.deploymentId })
      .from(deploymentRouting)
      .where(expired)
      .orderBy(asc(deploymentRouting.id))
      .limit(limit);
    if (candidates.length === 0) {
      return [];
    }
    // The deployment first, as the API's writes lock it (assertDeployment): the two never wait on each other in
    // opposite orders.
    const held = await t
      .select({ id: deployments.id })
      .from(deployments)
      .where(inArray(deployments.id, [...new Set(candidates.map((c) => c.deploymentId))]))
      .orderBy(asc(deployments.id))
      .for("update", { skipLocked: true });
    const mine = new Set(held.map((d) => d.id));
    const stale = candidates.filter((c) => mine.has(c.deploymentId));
    if (stale.length === 0) {
      return [];
    }
    const gone = await t
      .delete(deploymentRouting)
      .where(
        and(
          inArray(
            deploymentRouting.id,
            stale.map((r) => r.id),
          ),
          expired,
        ),
      )
      .returning();
    for (const deploymentId of new Set(gone.filter((r) => r.isPrimary).map((r) => r.deploymentId))) {
      const next = nextPrimary(await listRoutes(t, deploymentId));
      if (next) {
        await t
          .update(deploymentRouting)
          .set({ isPrimary: true, updatedAt: now })
          .where(eq(deploymentRouting.id, next.id));
      }
    }
    await recordEvents(t, domainEvents("domain.expired", gone));
    return gone;
  });
}

/** One event per route whose domain was verified or expired. */
function domainEvents(type: "domain.verified" | "domain.expired", routes: readonly RoutingRow[]): NewEvent[] {
  return routes.map((r) => ({
    type,
    deploymentId: r.deploymentId,
    subject: r.domain,
    data: { path_prefix: r.pathPrefix, route_id: r.id },
  }));
}
