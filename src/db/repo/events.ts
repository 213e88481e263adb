import { events } from "../../../schema/tables.js";
import type { Db } from "../client.js";

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
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  type: EventType;
  deploymentId?: string | null;
  subject?: string | null;
  data: Record<string, unknown>;
}

/**
 * Records events; pass the transaction of the change they describe, so an event exists exactly when its change
 * committed. The insert trigger NOTIFYs `obiente_events` (SSE streams and webhook deliverers wake up).
 */
export async function recordEvents(db: Db, list: readonly NewEvent[]): Promise<void> {
  if (list.length === 0) {
    return;
  }
  await db.insert(events).values(
    list.map((e) => ({
      type: e.type,
      deploymentId: e.deploymentId ?? null,
      subject: e.subject ?? null,
      data: e.data,
    })),
  );
}

export const recordEvent = (db: Db, e: NewEvent) => recordEvents(db, [e]);
