import { eq, inArray } from "drizzle-orm";
import { deploymentMiddlewares } from "../../../schema/tables.js";
import type { StoredMiddlewares } from "../../render/middlewares.js";
import type { Db } from "../client.js";
import { isForeignKeyViolation, NotFound } from "../errors.js";

/** Replaces a deployment's middleware settings (already validated and hashed). */
export async function putMiddlewares(db: Db, deploymentId: string, config: StoredMiddlewares): Promise<void> {
  const now = new Date();
  try {
    await db
      .insert(deploymentMiddlewares)
      .values({ deploymentId, config })
      .onConflictDoUpdate({ target: deploymentMiddlewares.deploymentId, set: { config, updatedAt: now } });
  } catch (err) {
    if (isForeignKeyViolation(err)) {
      throw new NotFound("deployment", deploymentId);
    }
    throw err;
  }
}

export async function getMiddlewares(db: Db, deploymentId: string): Promise<Record<string, unknown>> {
  const [row] = await db
    .select()
    .from(deploymentMiddlewares)
    .where(eq(deploymentMiddlewares.deploymentId, deploymentId));
  return row?.config ?? {};
}

export async function loadAllMiddlewares(db: Db, ids?: readonly string[]): Promise<Map<string, unknown>> {
  const q = db.select().from(deploymentMiddlewares);
  const rows = await (ids ? q.where(inArray(deploymentMiddlewares.deploymentId, [...ids])) : q);
  return new Map(rows.map((r) => [r.deploymentId, r.config]));
}
