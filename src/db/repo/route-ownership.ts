import { and, eq } from "drizzle-orm";
import { deploymentRouting, type RoutingRow } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { Conflict } from "../errors.js";

// Who may hold a (domain, path): only verified routes claim one (DOMAIN_VERIFICATION=required stores a route whose
// domain is not proven yet as `pending`, which claims nothing), so the 409s and the starting state of a new route
// are decided here for every writer of routes (src/db/repo/routing.ts, domain-verification.ts).

/**
 * How new routes prove their domain (DOMAIN_VERIFICATION=required, built by src/domains/verification.ts); without
 * one every route is verified at once, as before verification existed.
 */
export interface DomainProof {
  /** False for a name that needs no proof (under PLATFORM_DOMAINS). */
  needed(domain: string): boolean;
  now: Date;
  /** When a pending route is removed unless verified. */
  expiresAt: Date;
  /** The background job's first look. */
  nextCheckAt: Date;
  newToken(): string;
}

export type VerificationColumns = Pick<
  typeof deploymentRouting.$inferInsert,
  | "verification"
  | "verificationToken"
  | "verificationExpiresAt"
  | "verificationNextCheckAt"
  | "verificationAttempts"
  | "verifiedAt"
>;

export const VERIFIED: VerificationColumns = {
  verification: "verified",
  verificationToken: null,
  verificationExpiresAt: null,
  verificationNextCheckAt: null,
  verificationAttempts: 0,
  verifiedAt: null,
};

/**
 * Who owns (domain, path): the deployment whose route for it is verified (a pending route claims nothing). Used to
 * name the owner in a 409.
 */
export async function routeOwner(db: Db, domain: string, pathPrefix: string): Promise<RoutingRow | undefined> {
  const [row] = await db
    .select()
    .from(deploymentRouting)
    .where(
      and(
        eq(deploymentRouting.domain, domain),
        eq(deploymentRouting.pathPrefix, pathPrefix),
        eq(deploymentRouting.verification, "verified"),
      ),
    );
  return row;
}

/** The deployment's own route for (domain, path), verified or pending. */
export async function ownRoute(
  db: Db,
  deploymentId: string,
  domain: string,
  pathPrefix: string,
): Promise<RoutingRow | undefined> {
  const [row] = await db
    .select()
    .from(deploymentRouting)
    .where(
      and(
        eq(deploymentRouting.deploymentId, deploymentId),
        eq(deploymentRouting.domain, domain),
        eq(deploymentRouting.pathPrefix, pathPrefix),
      ),
    );
  return row;
}

/** DOMAIN_CONFLICT for (domain, path) owned by `ownerId` (undefined: the owner went away meanwhile). */
export function domainConflict(
  domain: string,
  pathPrefix: string,
  ownerId: string | undefined,
  deploymentId: string,
): Conflict {
  return new Conflict(
    ownerId === deploymentId
      ? `${domain} on path ${pathPrefix} is already a route of this deployment.`
      : ownerId
        ? `${domain} on path ${pathPrefix} belongs to deployment ${ownerId}.`
        : `${domain} on path ${pathPrefix} belongs to another deployment.`,
    "DOMAIN_CONFLICT",
    { owner_deployment_id: ownerId ?? null, domain, path_prefix: pathPrefix },
  );
}

/** Explains a unique violation on (domain, path): the deployment already has it, or another verified it. */
export async function conflictAfterUniqueViolation(
  db: Db,
  domain: string,
  pathPrefix: string,
  deploymentId: string,
): Promise<Conflict> {
  // The failed transaction (or savepoint) is gone; look the owner up outside it.
  const own = await ownRoute(db, deploymentId, domain, pathPrefix);
  const owner = own ?? (await routeOwner(db, domain, pathPrefix));
  return domainConflict(domain, pathPrefix, owner?.deploymentId, deploymentId);
}

/**
 * How a route for `domain` starts out: verified when no proof is needed or the deployment has proven the domain
 * already (a verified route of the same name on another path); else pending, reusing a pending sibling's token so
 * one TXT record proves every path.
 */
export async function verificationFor(
  t: Db,
  deploymentId: string,
  domain: string,
  proof: DomainProof | undefined,
  exceptId?: string,
): Promise<VerificationColumns> {
  if (!proof?.needed(domain)) {
    return VERIFIED;
  }
  const siblings = (
    await t
      .select()
      .from(deploymentRouting)
      .where(and(eq(deploymentRouting.deploymentId, deploymentId), eq(deploymentRouting.domain, domain)))
  ).filter((r) => r.id !== exceptId);
  const proven = siblings.find((r) => r.verification === "verified");
  if (proven) {
    return { ...VERIFIED, verifiedAt: proven.verifiedAt };
  }
  const token = siblings.find((r) => r.verificationToken !== null)?.verificationToken;
  return {
    verification: "pending",
    verificationToken: token ?? proof.newToken(),
    verificationExpiresAt: proof.expiresAt,
    verificationNextCheckAt: proof.nextCheckAt,
    verificationAttempts: 0,
    verifiedAt: null,
  };
}

/** A pending route may wait on any (domain, path) except one another deployment has verified: that is a 409 now. */
export async function assertUnclaimed(t: Db, deploymentId: string, domain: string, pathPrefix: string): Promise<void> {
  const owner = await routeOwner(t, domain, pathPrefix);
  if (owner && owner.deploymentId !== deploymentId) {
    throw domainConflict(domain, pathPrefix, owner.deploymentId, deploymentId);
  }
}

/** The route to make primary when the primary goes: the oldest verified one, else the oldest. */
export function nextPrimary(remaining: readonly RoutingRow[]): RoutingRow | undefined {
  return remaining.find((r) => r.verification === "verified") ?? remaining[0];
}
