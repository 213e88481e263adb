import { asc, eq, inArray, sql } from "drizzle-orm";
import type { LbAlgo, Protocol } from "../../../schema/enums.js";
import {
  certificates,
  deploymentMiddlewares,
  deploymentRouting,
  deployments,
  deploymentTraffic,
} from "../../../schema/tables.js";
import type { StateRows } from "../../export/state-model.js";
import type { Db, Tx } from "../client.js";
import { newId } from "../ids.js";

// Reads and writes of the declarative state (obiente-router dump / apply). Apply runs every write of a state file
// inside the caller's one transaction: the other repo functions open their own, so they are not used here.

/** Bound parameters per statement stay far below PostgreSQL's 65,535. */
const CHUNK = 1000;
function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) {
    out.push(items.slice(i, i + CHUNK));
  }
  return out;
}

/** Serializes applies across instances; released at commit or rollback (pg_advisory_xact_lock). */
const STATE_APPLY_LOCK = 0x0b1e_57a7;

/**
 * Everything the state document holds (replicas and health are runtime state: not read). Pending routes (domain
 * ownership not proven yet) are not routing state: they are listed apart, for apply to step around.
 */
export async function loadStateRows(db: Db): Promise<StateRows> {
  const [deps, allRoutes, mws, traffic, certs] = [
    await db.select().from(deployments).orderBy(asc(deployments.id)),
    await db.select().from(deploymentRouting).orderBy(asc(deploymentRouting.id)),
    await db
      .select({ deploymentId: deploymentMiddlewares.deploymentId, config: deploymentMiddlewares.config })
      .from(deploymentMiddlewares),
    await db
      .select({
        deploymentId: deploymentTraffic.deploymentId,
        split: deploymentTraffic.split,
        geo: deploymentTraffic.geo,
        resilience: deploymentTraffic.resilience,
      })
      .from(deploymentTraffic),
    await db.select({ fingerprintSha256: certificates.fingerprintSha256, sans: certificates.sans }).from(certificates),
  ];
  const routes = allRoutes.filter((r) => r.verification === "verified");
  const pending = allRoutes
    .filter((r) => r.verification !== "verified")
    .map((r) => ({
      id: r.id,
      deploymentId: r.deploymentId,
      domain: r.domain,
      pathPrefix: r.pathPrefix,
      isPrimary: r.isPrimary,
    }));
  return { deployments: deps, routes, middlewares: mws, traffic, certificates: certs, pending };
}

/** Waits for any other apply to finish; only inside a transaction (the lock goes with it). */
export async function lockStateApply(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${STATE_APPLY_LOCK})`);
}

export interface RouteValues {
  deploymentId: string;
  targetPort: number;
  protocol: Protocol;
  loadBalancerAlgo: LbAlgo;
  sslEnabled: boolean;
  sslCertResolver: string;
  tlsIncludeApex: boolean;
  isPrimary: boolean;
}

export interface DeploymentValues {
  name: string;
  healthPath: string | null;
  healthIntervalSeconds: number | null;
  healthTimeoutSeconds: number | null;
  healthExpectedStatus: string | null;
  healthMode: "grpc" | "http" | null;
  backendTlsServerName: string | null;
  backendTlsCaPem: string | null;
  backendTlsInsecureSkipVerify: boolean;
}

/** The writes of one apply, in the order they run (see writeState). */
export interface StateWrites {
  insertDeployments: ({ id: string } & DeploymentValues)[];
  updateDeployments: { id: string; set: DeploymentValues }[];
  deleteRouteIds: string[];
  /** Primaries that stop being one (or move): cleared before any route becomes primary. */
  unsetPrimaryIds: string[];
  updateRoutes: { id: string; set: RouteValues }[];
  insertRoutes: ({ domain: string; pathPrefix: string } & RouteValues)[];
  deleteDeploymentIds: string[];
  putMiddlewares: { deploymentId: string; config: Record<string, unknown> }[];
  deleteMiddlewares: string[];
  /** One traffic part (split, geo, resilience) set or cleared (null). */
  putTraffic: { deploymentId: string; part: "split" | "geo" | "resilience"; value: Record<string, unknown> | null }[];
  deleteCertificateFingerprints: string[];
}

/**
 * Runs the writes inside `tx`, ordered so no constraint trips midway: routes are deleted before any is inserted
 * (unique domain + path), old primaries are cleared before new ones are set (one primary per deployment), and
 * routes moving out of a pruned deployment move before it is deleted (its routes go with it, ON DELETE CASCADE).
 * Statements run only for non-empty lists: the change-feed triggers fire per statement, even on zero rows.
 */
export async function writeState(tx: Tx, w: StateWrites): Promise<void> {
  const now = new Date();
  for (const part of chunks(w.insertDeployments)) {
    await tx.insert(deployments).values(part);
  }
  for (const d of w.updateDeployments) {
    await tx
      .update(deployments)
      .set({ ...d.set, updatedAt: now })
      .where(eq(deployments.id, d.id));
  }
  for (const part of chunks(w.deleteRouteIds)) {
    await tx.delete(deploymentRouting).where(inArray(deploymentRouting.id, part));
  }
  for (const part of chunks(w.unsetPrimaryIds)) {
    await tx
      .update(deploymentRouting)
      .set({ isPrimary: false, updatedAt: now })
      .where(inArray(deploymentRouting.id, part));
  }
  for (const r of w.updateRoutes) {
    await tx
      .update(deploymentRouting)
      .set({ ...r.set, updatedAt: now })
      .where(eq(deploymentRouting.id, r.id));
  }
  for (const part of chunks(w.insertRoutes)) {
    await tx.insert(deploymentRouting).values(part.map((r) => ({ id: newId("rt"), ...r })));
  }
  for (const part of chunks(w.deleteDeploymentIds)) {
    await tx.delete(deployments).where(inArray(deployments.id, part));
  }
  for (const m of w.putMiddlewares) {
    await tx
      .insert(deploymentMiddlewares)
      .values(m)
      .onConflictDoUpdate({ target: deploymentMiddlewares.deploymentId, set: { config: m.config, updatedAt: now } });
  }
  for (const part of chunks(w.deleteMiddlewares)) {
    await tx.delete(deploymentMiddlewares).where(inArray(deploymentMiddlewares.deploymentId, part));
  }
  for (const t of w.putTraffic) {
    await tx
      .insert(deploymentTraffic)
      .values({ deploymentId: t.deploymentId, [t.part]: t.value })
      .onConflictDoUpdate({ target: deploymentTraffic.deploymentId, set: { [t.part]: t.value, updatedAt: now } });
  }
  for (const part of chunks(w.deleteCertificateFingerprints)) {
    await tx.delete(certificates).where(inArray(certificates.fingerprintSha256, part));
  }
}
