/**
 * Delay before reconnect attempt `attempt` (0 = the first retry): doubling from `baseMs`, capped at `maxMs`, the
 * upper half scaled by `random` (0..1) so instances that lost the same server do not come back in lockstep. Pure.
 */
export function backoffMs(attempt: number, random: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * Math.min(Math.max(random, 0), 1));
}

/** The LISTEN session's reconnects: a restart or failover of a few seconds is back within about a second. */
export const LISTEN_BACKOFF = { baseMs: 250, maxMs: 5000 } as const;

/**
 * The pool's reconnects (postgres.js `backoff`, in seconds, given its failed-attempt count from 1). Its default
 * grows to 10–20 s, so after an outage of half a minute new queries would wait that long for a connection.
 */
export function poolBackoffSeconds(retries: number): number {
  return backoffMs(retries - 1, Math.random(), 50, 2000) / 1000;
}
