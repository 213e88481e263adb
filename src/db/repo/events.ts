import { and, asc, desc, eq, gt, gte, inArray, lt, max, sql } from "drizzle-orm";
import { type EventRow, events } from "../../../schema/tables.js";
import { type Db, rowsOf } from "../client.js";

/**
 * Every event type, with what `subject` names. Webhooks subscribe to these (or `*`); GET /api/v1/events filters
 * on them.
 */
export const EVENT_TYPES = [
  "replica.health_changed", // subject: location id; data: from, to, reason, source
  "config.revision", // subject: revision number; data: cause, actor, detail, held, summary counts
  "guard.held", // subject: revision number; data: removed routers, percent
  "certificate.expiring", // subject: certificate id; data: not_after, days_left, sans
  "certificate.expired", // subject: certificate id; data: not_after, sans
  "domain.verified", // subject: domain; data: path_prefix, route id
  "domain.expired", // subject: domain; data: path_prefix (a pending domain nobody verified in time)
  "token.created", // subject: token id; data: name, scopes, actor
  "token.revoked", // subject: token id; data: name, actor
  "rollout.started", // subject: track; data: track, step_index, weight, reason, actor
  "rollout.step", // subject: track; data: track, step_index, weight, from_weight, reason
  "rollout.paused", // subject: track; data: track, step_index, weight, actor
  "rollout.resumed", // subject: track; data: track, step_index, weight, actor
  "rollout.aborted", // subject: track; data: track, weight, from_weight, reason, actor
  "rollout.promoted", // subject: track; data: track, reason
  "replica.draining", // subject: location id; data: drain_until, actor
  "replica.drained", // subject: location id; data: drain_started_at, drain_until
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const isEventType = (s: string): s is EventType => (EVENT_TYPES as readonly string[]).includes(s);

export interface NewEvent {
  type: EventType;
  deploymentId?: string | null;
  subject?: string | null;
  data: Record<string, unknown>;
}

/**
 * Event ids must become visible in id order, or a reader's cursor (SSE `Last-Event-ID`, a webhook's cursor) would
 * step over an id that a slower transaction commits later. Every insert takes this transaction-level lock first,
 * so event-writing transactions commit one after the other from their first event on (they insert events last,
 * just before committing, so the wait is short and no other lock is taken while it is held).
 */
const EVENTS_LOCK = 0x0b1e_e7e7;

async function lockEvents(tx: Db): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${EVENTS_LOCK})`);
}

const valuesOf = (list: readonly NewEvent[]) =>
  list.map((e) => ({
    type: e.type,
    deploymentId: e.deploymentId ?? null,
    subject: e.subject ?? null,
    data: e.data,
  }));

/**
 * Records events; pass the transaction of the change they describe, so an event exists exactly when its change
 * committed. The insert trigger NOTIFYs `obiente_events` (SSE streams and webhook deliverers wake up).
 */
export async function recordEvents(db: Db, list: readonly NewEvent[]): Promise<void> {
  if (list.length === 0) {
    return;
  }
  // Inside the caller's transaction this is a savepoint: the lock is held until the caller commits.
  await db.transaction(async (tx) => {
    await lockEvents(tx);
    await tx.insert(events).values(valuesOf(list));
  });
}

export const recordEvent = (db: Db, e: NewEvent) => recordEvents(db, [e]);

/**
 * Records an event unless one of the same type and subject exists already (certificate expiry: several instances
 * and restarts run the same daily check). Under the events lock, so two instances cannot both see "none yet".
 * Returns whether it was recorded.
 */
export async function recordEventOnce(db: Db, e: NewEvent & { subject: string }): Promise<boolean> {
  return db.transaction(async (tx) => {
    await lockEvents(tx);
    const [seen] = await tx
      .select({ id: events.id })
      .from(events)
      .where(and(eq(events.type, e.type), eq(events.subject, e.subject)))
      .limit(1);
    if (seen) {
      return false;
    }
    await tx.insert(events).values(valuesOf([e]));
    return true;
  });
}

/**
 * Records events only if this transaction inserted config revision `revision` itself: every instance renders the
 * same bytes and records them, the row is unique on its hash, and only the one whose insert won reports it.
 * `xmax = 0` tells: an upsert that found the row (updated it, or only locked it) leaves its own xid there (the
 * same test as upsertLocation's `inserted`). Call it in the insert's transaction.
 */
export async function recordEventsIfRevisionInserted(tx: Db, revision: number, list: readonly NewEvent[]) {
  const [row] = rowsOf<{ fresh: boolean }>(
    await tx.execute(sql`select (xmax::text = '0') as fresh from config_revisions where revision = ${revision}`),
  );
  if (row?.fresh === true) {
    await recordEvents(tx, list);
  }
}

/**
 * Marks an already recorded revision held and records its events, unless it is held and unconfirmed already:
 * the row lock makes a second instance holding the same bytes at the same moment wait, then see it held.
 * Returns whether this call marked it.
 */
export async function holdRevisionOnce(
  db: Db,
  revision: number,
  summary: Record<string, unknown>,
  list: readonly NewEvent[],
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const marked = await tx.execute(sql`
      update config_revisions set held = true, summary = ${JSON.stringify(summary)}::jsonb,
             confirmed_at = null, confirmed_by = null
       where revision = ${revision} and not (held and confirmed_at is null)
      returning revision`);
    if (rowsOf(marked).length === 0) {
      return false;
    }
    await recordEvents(tx, list);
    return true;
  });
}

export interface EventQuery {
  types?: readonly string[] | undefined;
  deploymentId?: string | undefined;
  /** Only events at or after this time. */
  since?: Date | undefined;
  /** Only events with a greater id (the cursor, oldest first). */
  after?: number | undefined;
  /** Only events with a smaller id (the cursor, newest first). */
  before?: number | undefined;
  /** Newest first instead of oldest first. */
  newestFirst?: boolean | undefined;
  limit: number;
}

/** Events oldest (or newest) first by id, filtered; `limit` rows at most. */
export async function listEvents(db: Db, q: EventQuery): Promise<EventRow[]> {
  const where = and(
    q.after === undefined ? undefined : gt(events.id, q.after),
    q.before === undefined ? undefined : lt(events.id, q.before),
    q.since === undefined ? undefined : gte(events.at, q.since),
    q.types && q.types.length > 0 ? inArray(events.type, [...q.types]) : undefined,
    q.deploymentId === undefined ? undefined : eq(events.deploymentId, q.deploymentId),
  );
  return db
    .select()
    .from(events)
    .where(where)
    .orderBy(q.newestFirst ? desc(events.id) : asc(events.id))
    .limit(q.limit);
}

/** The newest event id (0 when there is none): a new stream or webhook starts after it. */
export async function lastEventId(db: Db): Promise<number> {
  const [row] = await db.select({ id: max(events.id) }).from(events);
  return Number(row?.id ?? 0);
}
