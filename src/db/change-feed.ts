// The database's change feed (schema/migrations/0001_change_notify.sql, 0009_deployment_feed.sql): every change that
// can alter the rendered config bumps `routing_change_seq` (read by readChangeSeq in repo/snapshot.ts) and sends
// NOTIFY on this channel, naming what changed in the payload.

/** The NOTIFY channel the routing triggers send on; the name is fixed by the migration. */
export const ROUTING_CHANNEL = "obiente_routing";

/**
 * What one notification says changed: one deployment's rows (`d:<id>`), only what is served (`c`: a freeze, a
 * confirmation), or anything (the empty payload: certificates, TRUNCATE, an older instance's trigger).
 */
export type RoutingNotice = { kind: "deployment"; id: string } | { kind: "control" } | { kind: "all" };

export function parseRoutingNotice(payload: string): RoutingNotice {
  if (payload.startsWith("d:") && payload.length > 2) {
    return { kind: "deployment", id: payload.slice(2) };
  }
  return payload === "c" ? { kind: "control" } : { kind: "all" };
}
