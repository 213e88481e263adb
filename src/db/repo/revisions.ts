import { and, count, desc, eq, gte, isNotNull, lt, max, min, sql } from "drizzle-orm";
import { configRevisions, type FreezeRow, type RevisionRow, routingFreeze } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { NotFound } from "../errors.js";

/** A revision without its bytes: what lists and decisions need. */
export type RevisionMeta = Omit<RevisionRow, "body">;

/** What an instance records for a config it rendered. */
export interface NewRevision {
  hash: string;
  /** The JSON bytes, gzipped. */
  body: Buffer;
  bytes: number;
  cause: string;
  actor: string | null;
  detail: string | null;
  summary: Record<string, unknown>;
  held: boolean;
}

const meta = {
  revision: configRevisions.revision,
  hash: configRevisions.hash,
  createdAt: configRevisions.createdAt,
  cause: configRevisions.cause,
  actor: configRevisions.actor,
  detail: configRevisions.detail,
  summary: configRevisions.summary,
  bytes: configRevisions.bytes,
  held: configRevisions.held,
  confirmedAt: configRevisions.confirmedAt,
  confirmedBy: configRevisions.confirmedBy,
  firstServedAt: configRevisions.firstServedAt,
  lastServedAt: configRevisions.lastServedAt,
};

export async function findRevisionByHash(db: Db, hash: string): Promise<RevisionMeta | undefined> {
  const [row] = await db.select(meta).from(configRevisions).where(eq(configRevisions.hash, hash));
  return row;
}

/**
 * Inserts a revision, or (another instance got there first) names the cause on the existing row when that row only
 * knew it from the change feed: the instance that took the write knows who made it.
 */
export async function insertRevision(db: Db, r: NewRevision): Promise<RevisionMeta> {
  const [row] = await db
    .insert(configRevisions)
    .values(r)
    .onConflictDoUpdate({
      target: configRevisions.hash,
      set: {
        cause: sql`excluded.cause`,
        actor: sql`excluded.actor`,
        detail: sql`excluded.detail`,
        held: sql`${configRevisions.held} or excluded.held`,
      },
      setWhere: sql`(${configRevisions.cause} = 'feed' and excluded.cause <> 'feed') or (excluded.held and not ${configRevisions.held})`,
    })
    .returning(meta);
  const found = row ?? (await findRevisionByHash(db, r.hash));
  if (!found) {
    throw new NotFound("revision", r.hash); // pruned between the insert and the read: the next refresh records it
  }
  return found;
}

/** Names a specific cause on a row recorded from the change feed (no-op when it already has one). */
export async function nameRevisionCause(
  db: Db,
  revision: number,
  cause: { cause: string; actor: string | null; detail: string | null },
): Promise<void> {
  await db
    .update(configRevisions)
    .set(cause)
    .where(and(eq(configRevisions.revision, revision), eq(configRevisions.cause, "feed")));
}

/**
 * Marks a revision held by the guard, with what it removes from the config served now (never pruned unconfirmed).
 * A confirmation given for an earlier hold is withdrawn: it confirmed removing routers from another config.
 */
export async function markRevisionHeld(db: Db, revision: number, summary: Record<string, unknown>): Promise<void> {
  await db
    .update(configRevisions)
    .set({ held: true, summary, confirmedAt: null, confirmedBy: null })
    .where(eq(configRevisions.revision, revision));
}

/** Stamps the time an instance started serving a revision (first time kept). */
export async function markRevisionServed(db: Db, revision: number): Promise<void> {
  await db
    .update(configRevisions)
    .set({ firstServedAt: sql`coalesce(${configRevisions.firstServedAt}, now())`, lastServedAt: sql`now()` })
    .where(eq(configRevisions.revision, revision));
}

/** The revision some instance served last, with its bytes: the guard's baseline after a restart. */
export async function lastServedRevision(db: Db): Promise<RevisionRow | undefined> {
  const [row] = await db
    .select()
    .from(configRevisions)
    .where(isNotNull(configRevisions.lastServedAt))
    .orderBy(desc(configRevisions.lastServedAt), desc(configRevisions.revision))
    .limit(1);
  return row;
}

export async function getRevision(db: Db, revision: number): Promise<RevisionRow> {
  const [row] = await db.select().from(configRevisions).where(eq(configRevisions.revision, revision));
  if (!row) {
    throw new NotFound("revision", String(revision));
  }
  return row;
}

export async function getRevisionMeta(db: Db, revision: number): Promise<RevisionMeta> {
  const [row] = await db.select(meta).from(configRevisions).where(eq(configRevisions.revision, revision));
  if (!row) {
    throw new NotFound("revision", String(revision));
  }
  return row;
}

/** Newest first, keyset paged on the number. */
export async function listRevisions(db: Db, page: { limit: number; before?: number | undefined }) {
  const rows = await db
    .select(meta)
    .from(configRevisions)
    .where(page.before === undefined ? undefined : lt(configRevisions.revision, page.before))
    .orderBy(desc(configRevisions.revision))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const items = more ? rows.slice(0, page.limit) : rows;
  return { items, nextBefore: more ? (items.at(-1)?.revision ?? null) : null };
}

/** The lowest and highest numbers still kept (to tell a pruned revision from one that never existed). */
export async function revisionRange(db: Db): Promise<{ oldest: number | null; newest: number | null }> {
  const [row] = await db
    .select({ oldest: min(configRevisions.revision), newest: max(configRevisions.revision) })
    .from(configRevisions);
  return { oldest: row?.oldest ?? null, newest: row?.newest ?? null };
}

/**
 * Keeps the newest `keep` revisions by number. Never deletes the frozen revision, a held one nobody confirmed (an
 * admin may still want to read or confirm it), or the one served last (the guard's baseline after a restart).
 */
export async function pruneRevisions(db: Db, keep: number): Promise<number> {
  const gone = await db
    .delete(configRevisions)
    .where(sql`${configRevisions.revision} < (select revision from config_revisions order by revision desc offset ${keep - 1} limit 1)
      and not (${configRevisions.held} and ${configRevisions.confirmedAt} is null)
      and ${configRevisions.revision} not in (select revision from routing_freeze)
      and ${configRevisions.revision} <> coalesce((select revision from config_revisions where last_served_at is not null
                                order by last_served_at desc, revision desc limit 1), 0)`)
    .returning({ revision: configRevisions.revision });
  return gone.length;
}

/** Confirms a held revision: the trigger on confirmed_at tells every instance to serve it. */
export async function confirmRevision(db: Db, revision: number, actor: string | null): Promise<RevisionMeta> {
  const [row] = await db
    .update(configRevisions)
    .set({ confirmedAt: sql`now()`, confirmedBy: actor })
    .where(eq(configRevisions.revision, revision))
    .returning(meta);
  if (!row) {
    throw new NotFound("revision", String(revision));
  }
  return row;
}

export async function readFreeze(db: Db): Promise<FreezeRow | undefined> {
  const [row] = await db.select().from(routingFreeze).where(eq(routingFreeze.id, 1));
  return row;
}

/** Pins what every instance serves (the trigger on routing_freeze tells them). */
export async function setFreeze(
  db: Db,
  f: { revision: number; reason: string; actor: string | null },
): Promise<FreezeRow> {
  const [row] = await db
    .insert(routingFreeze)
    .values({ id: 1, ...f })
    .onConflictDoUpdate({
      target: routingFreeze.id,
      set: { revision: f.revision, reason: f.reason, actor: f.actor, frozenAt: sql`now()` },
    })
    .returning();
  if (!row) {
    throw new Error("freeze not written");
  }
  return row;
}

/** Removes the freeze; false when nothing was frozen. */
export async function clearFreeze(db: Db): Promise<boolean> {
  const gone = await db.delete(routingFreeze).returning({ id: routingFreeze.id });
  return gone.length > 0;
}

/** Revisions recorded since a time (those a freeze keeps waiting). */
export async function countRevisionsSince(db: Db, since: Date): Promise<number> {
  const [row] = await db.select({ n: count() }).from(configRevisions).where(gte(configRevisions.createdAt, since));
  return row?.n ?? 0;
}
