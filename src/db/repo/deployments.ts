import { and, asc, count, eq, gt, inArray, or, type SQL, sql } from "drizzle-orm";
import { type DeploymentRow, deployments } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { Conflict, isUniqueViolation, NotFound } from "../errors.js";
import { newId } from "../ids.js";

export async function createDeployment(
  db: Db,
  input: { id?: string | undefined; name: string },
): Promise<DeploymentRow> {
  const id = input.id ?? newId("dep");
  try {
    const [row] = await db.insert(deployments).values({ id, name: input.name }).returning();
    if (!row) {
      throw new Error("insert returned no row");
    }
    return row;
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw new Conflict(`Deployment ${id} already exists.`, "DEPLOYMENT_EXISTS", { deployment_id: id });
    }
    throw err;
  }
}

export async function getDeployment(db: Db, id: string): Promise<DeploymentRow> {
  const [row] = await db.select().from(deployments).where(eq(deployments.id, id));
  if (!row) {
    throw new NotFound("deployment", id);
  }
  return row;
}

/**
 * Keyset pagination by id: stable under concurrent inserts; `only` limits it to some ids or an id prefix; `q` keeps
 * the deployments whose id or name contains it, case-insensitively.
 */
export async function listDeployments(
  db: Db,
  page: {
    limit: number;
    after?: string | undefined;
    q?: string | undefined;
    only?: { ids: readonly string[] | null; prefix: string | null };
  },
) {
  const conds: SQL[] = [];
  if (page.after) {
    conds.push(gt(deployments.id, page.after));
  }
  if (page.q !== undefined && page.q !== "") {
    // strpos compares text as is: no LIKE wildcards (`%`, `_`, `\`) to escape. Both sides go through the
    // database's lower(), so they fold alike. The scan follows the primary key in id order and stops after
    // limit + 1 matches (10k deployments: a few milliseconds).
    const q = page.q;
    conds.push(
      sql`(strpos(lower(${deployments.id}), lower(${q})) > 0 or strpos(lower(${deployments.name}), lower(${q})) > 0)`,
    );
  }
  if (page.only) {
    const { ids, prefix } = page.only;
    const either = or(
      ids && ids.length > 0 ? inArray(deployments.id, [...ids]) : sql`false`,
      // starts_with compares text as is: no LIKE wildcards to escape in the prefix.
      prefix !== null ? sql`starts_with(${deployments.id}, ${prefix})` : sql`false`,
    );
    if (either) {
      conds.push(either);
    }
  }
  const rows = await db
    .select()
    .from(deployments)
    .where(conds.length > 0 ? and(...conds) : undefined)
    .orderBy(asc(deployments.id))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const items = more ? rows.slice(0, page.limit) : rows;
  return { items, nextCursor: more ? (items.at(-1)?.id ?? null) : null };
}

/** Deletes a deployment; its routes and replicas go with it (ON DELETE CASCADE). */
export async function deleteDeployment(db: Db, id: string): Promise<void> {
  const gone = await db.delete(deployments).where(eq(deployments.id, id)).returning({ id: deployments.id });
  if (gone.length === 0) {
    throw new NotFound("deployment", id);
  }
}

export async function countDeployments(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(deployments);
  return row?.n ?? 0;
}
