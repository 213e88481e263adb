// The database's change feed (schema/migrations/0001_change_notify.sql): every change that can alter the rendered
// config bumps `routing_change_seq` (read by readChangeSeq in repo/snapshot.ts) and sends NOTIFY on this channel.

/** The NOTIFY channel the routing triggers send on; the name is fixed by the migration. */
export const ROUTING_CHANNEL = "obiente_routing";
