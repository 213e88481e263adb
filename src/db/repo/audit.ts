import { and, asc, eq, gt, gte, lt, or, type SQL } from "drizzle-orm";
import {
  type AuditRow,
  auditLog,
  deploymentLocations,
  deploymentMiddlewares,
  deploymentRouting,
  deployments,
} from "../../../schema/tables.js";
import type { Logger } from "../../lib/logger.js";
import type { Db, DbHandle } from "../client.js";
import { getTraffic } from "./traffic.js";

export type NewAuditRow = Omit<typeof auditLog.$inferInsert, "id">;

export async function insertAudit(db: Db, row: NewAuditRow): Promise<void> {
  await db.insert(auditLog).values(row);
}

export interface AuditQuery {
  deploymentId?: string | undefined;
  /** A token id (`tok_…`, `env:admin`) or name. */
  token?: string | undefined;
  since?: Date | undefined;
  /** Keyset cursor: rows after this id. */
  after?: number | undefined;
  limit: number;
}

/** Audit rows oldest first (keyset paged by id). */
export async function listAudit(db: Db, q: AuditQuery): Promise<{ items: AuditRow[]; nextCursor: number | null }> {
  const conds: SQL[] = [];
  if (q.deploymentId !== undefined) {
    conds.push(eq(auditLog.deploymentId, q.deploymentId));
  }
  if (q.token !== undefined) {
    const either = or(eq(auditLog.tokenId, q.token), eq(auditLog.tokenName, q.token));
    if (either) {
      conds.push(either);
    }
  }
  if (q.since !== undefined) {
    conds.push(gte(auditLog.at, q.since));
  }
  if (q.after !== undefined) {
    conds.push(gt(auditLog.id, q.after));
  }
  const rows = await db
    .select()
    .from(auditLog)
    .where(conds.length > 0 ? and(...conds) : undefined)
    .orderBy(asc(auditLog.id))
    .limit(q.limit + 1);
  const more = rows.length > q.limit;
  const items = more ? rows.slice(0, q.limit) : rows;
  return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
}

/** Deletes rows older than `before`; returns how many. */
export async function pruneAudit(db: Db, before: Date): Promise<number> {
  const gone = await db.delete(auditLog).where(lt(auditLog.at, before)).returning({ id: auditLog.id });
  return gone.length;
}

/** Everything the audit log compares about one deployment before and after a write, as stored. */
export async function loadDeploymentForAudit(db: Db, id: string) {
  const [deployment] = await db.select().from(deployments).where(eq(deployments.id, id));
  if (!deployment) {
    return undefined;
  }
  const routes = await db.select().from(deploymentRouting).where(eq(deploymentRouting.deploymentId, id));
  const replicas = await db.select().from(deploymentLocations).where(eq(deploymentLocations.deploymentId, id));
  const [mw] = await db
    .select({ config: deploymentMiddlewares.config })
    .from(deploymentMiddlewares)
    .where(eq(deploymentMiddlewares.deploymentId, id));
  const traffic = await getTraffic(db, id);
  return { deployment, routes, replicas, middlewares: mw?.config ?? null, traffic };
}
export type DeploymentForAudit = NonNullable<Awaited<ReturnType<typeof loadDeploymentForAudit>>>;

const HOUR = 3_600_000;

/** Deletes audit rows older than `days`, shortly after start and then hourly; returns its stop function. */
export function startAuditRetention(deps: {
  handle: DbHandle;
  logger: Logger;
  days: number;
  now?: () => Date;
}): () => void {
  const now = deps.now ?? (() => new Date());
  const run = async () => {
    try {
      const n = await pruneAudit(deps.handle.db, new Date(now().getTime() - deps.days * 24 * HOUR));
      if (n > 0) {
        deps.logger.info("audit rows past retention deleted", { rows: n, days: deps.days });
      }
    } catch (err) {
      deps.logger.warn("audit retention failed", { err });
    }
  };
  const first = setTimeout(() => void run(), 5_000);
  const timer = setInterval(() => void run(), HOUR);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
