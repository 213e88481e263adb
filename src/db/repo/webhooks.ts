import { and, desc, eq, lt, sql } from "drizzle-orm";
import { type WebhookDeliveryRow, type WebhookRow, webhookDeliveries, webhooks } from "../../../schema/tables.js";
import { type Db, rowsOf } from "../client.js";
import { NotFound } from "../errors.js";
import { newId } from "../ids.js";

/** A webhook without its (encrypted) secret: what lists and views need. */
export type WebhookMeta = Omit<WebhookRow, "secretEncrypted">;

const meta = {
  id: webhooks.id,
  url: webhooks.url,
  events: webhooks.events,
  cursor: webhooks.cursor,
  attempts: webhooks.attempts,
  nextAttemptAt: webhooks.nextAttemptAt,
  leaseOwner: webhooks.leaseOwner,
  leaseUntil: webhooks.leaseUntil,
  createdAt: webhooks.createdAt,
  createdBy: webhooks.createdBy,
};

const num = (row: WebhookMeta): WebhookMeta => ({ ...row, cursor: Number(row.cursor) });

/**
 * Creates a webhook that starts after the newest event committed now: it gets the events from its creation on
 * (event ids commit in order, see recordEvents, so none committed later can have a smaller id).
 */
export async function createWebhook(
  db: Db,
  input: { url: string; events: string[]; secretEncrypted: string; createdBy: string | null },
): Promise<WebhookMeta> {
  const [row] = await db
    .insert(webhooks)
    .values({ id: newId("wh"), ...input, cursor: sql`(select coalesce(max(id), 0) from events)` })
    .returning(meta);
  if (!row) {
    throw new Error("insert returned no row");
  }
  return num(row);
}

export async function listWebhooks(db: Db): Promise<WebhookMeta[]> {
  return (await db.select(meta).from(webhooks).orderBy(webhooks.createdAt, webhooks.id)).map(num);
}

export async function getWebhook(db: Db, id: string): Promise<WebhookMeta> {
  const [row] = await db.select(meta).from(webhooks).where(eq(webhooks.id, id));
  if (!row) {
    throw new NotFound("webhook", id);
  }
  return num(row);
}

export async function deleteWebhook(db: Db, id: string): Promise<WebhookMeta> {
  const [row] = await db.delete(webhooks).where(eq(webhooks.id, id)).returning(meta);
  if (!row) {
    throw new NotFound("webhook", id);
  }
  return num(row);
}

/** Attempts newest first, keyset paged on the id. */
export async function listDeliveries(
  db: Db,
  webhookId: string,
  page: { limit: number; before?: number | undefined },
): Promise<{ items: WebhookDeliveryRow[]; nextBefore: number | null }> {
  const t = webhookDeliveries;
  const rows = await db
    .select()
    .from(t)
    .where(and(eq(t.webhookId, webhookId), page.before === undefined ? undefined : lt(t.id, page.before)))
    .orderBy(desc(t.id))
    .limit(page.limit + 1);
  const more = rows.length > page.limit;
  const items = (more ? rows.slice(0, page.limit) : rows).map((r) => ({
    ...r,
    id: Number(r.id),
    eventId: Number(r.eventId),
  }));
  return { items, nextBefore: more ? (items.at(-1)?.id ?? null) : null };
}

/** A webhook leased for delivery, with its encrypted secret. */
export interface LeasedWebhook {
  id: string;
  url: string;
  events: string[];
  secretEncrypted: string;
  cursor: number;
  attempts: number;
}

/**
 * Leases up to `limit` webhooks that have events after their cursor and are due (no retry waiting): not leased, or
 * leased by a dead instance (expired), or by `owner` already (renewed). `FOR UPDATE SKIP LOCKED` lets instances
 * lease disjoint sets at the same moment; the lease keeps every other instance off the webhook until it expires.
 */
export async function leaseWebhooks(
  db: Db,
  opts: { owner: string; now: Date; leaseMs: number; limit: number },
): Promise<LeasedWebhook[]> {
  const now = opts.now.toISOString();
  const result = await db.execute(sql`
    with due as (
      select w.id from webhooks w
       where (w.lease_until is null or w.lease_until < ${now}::timestamptz or w.lease_owner = ${opts.owner})
         and (w.next_attempt_at is null or w.next_attempt_at <= ${now}::timestamptz)
         and w.cursor < (select coalesce(max(id), 0) from events)
       order by w.id
       limit ${opts.limit}
       for update skip locked
    )
    update webhooks w
       set lease_owner = ${opts.owner},
           lease_until = ${now}::timestamptz + ${opts.leaseMs}::int * interval '1 millisecond'
      from due
     where w.id = due.id
    returning w.id, w.url, w.events, w.secret_encrypted as "secretEncrypted", w.cursor, w.attempts`);
  return rowsOf<LeasedWebhook>(result).map((r) => ({
    ...r,
    events: typeof r.events === "string" ? (JSON.parse(r.events) as string[]) : r.events,
    cursor: Number(r.cursor),
    attempts: Number(r.attempts),
  }));
}

export interface LeaseRef {
  webhookId: string;
  owner: string;
  now: Date;
  leaseMs: number;
}

const stillOurs = (l: LeaseRef) => and(eq(webhooks.id, l.webhookId), eq(webhooks.leaseOwner, l.owner));
const renewed = (l: LeaseRef) => new Date(l.now.getTime() + l.leaseMs);

/** Moves the cursor over events the webhook does not subscribe to; false when the lease is gone. */
export async function skipTo(db: Db, lease: LeaseRef, cursor: number): Promise<boolean> {
  const rows = await db
    .update(webhooks)
    .set({ cursor, leaseUntil: renewed(lease) })
    .where(stillOurs(lease))
    .returning({ id: webhooks.id });
  return rows.length > 0;
}

export interface Attempt {
  eventId: number;
  attempt: number;
  statusCode: number | null;
  ok: boolean;
  error: string | null;
  durationMs: number;
  /** The webhook's state after it: the cursor (advanced past the event, or not), attempts and next try. */
  cursor: number;
  attempts: number;
  nextAttemptAt: Date | null;
}

/**
 * Records one delivery attempt and the webhook's new state together, only while `owner` still holds the lease
 * (false otherwise: deleted, or another instance took over after the lease ran out).
 */
export async function recordAttempt(db: Db, lease: LeaseRef, a: Attempt): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx
      .update(webhooks)
      .set({ cursor: a.cursor, attempts: a.attempts, nextAttemptAt: a.nextAttemptAt, leaseUntil: renewed(lease) })
      .where(stillOurs(lease))
      .returning({ id: webhooks.id });
    if (rows.length === 0) {
      return false;
    }
    await tx.insert(webhookDeliveries).values({
      webhookId: lease.webhookId,
      eventId: a.eventId,
      attempt: a.attempt,
      at: lease.now,
      statusCode: a.statusCode,
      ok: a.ok,
      error: a.error,
      durationMs: a.durationMs,
    });
    return true;
  });
}

/** Gives up this owner's leases (shutdown): another instance may take the webhooks at once. */
export async function releaseWebhookLeases(db: Db, owner: string): Promise<void> {
  await db.update(webhooks).set({ leaseOwner: null, leaseUntil: null }).where(eq(webhooks.leaseOwner, owner));
}
