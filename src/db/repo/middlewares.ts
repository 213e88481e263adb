import { eq } from "drizzle-orm";
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

export async function loadAllMiddlewares(db: Db): Promise<Map<string, unknown>> {
  const rows = await db.select().from(deploymentMiddlewares);
  return new Map(rows.map((r) => [r.deploymentId, r.config]));
}
