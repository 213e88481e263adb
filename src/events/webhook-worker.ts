// Webhook delivery: one instance per webhook (lease), in event order, retried with backoff.
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { Agent, request } from "undici";
import type { EventRow } from "../../schema/tables.js";
import type { Config } from "../config/env.js";
import type { Db, DbHandle } from "../db/client.js";
import { listEvents } from "../db/repo/events.js";
import {
  type LeasedWebhook,
  type LeaseRef,
  leaseWebhooks,
  recordAttempt,
  releaseWebhookLeases,
  skipTo,
} from "../db/repo/webhooks.js";
import type { Clock } from "../lib/clock.js";
import { coalesced } from "../lib/coalesce.js";
import type { Logger } from "../lib/logger.js";
import { decryptSecret, WrongKey } from "../tls/crypto.js";
import type { EventFeed } from "./feed.js";
import { eventJson } from "./view.js";
import {
  guardedLookup,
  hostOf,
  RefusedAddress,
  type Resolver,
  refusedWebhookAddress,
  systemResolver,
} from "./webhook-address.js";
import { deliveryHeaders } from "./webhook-signature.js";

/** One attempt's deadline: connect, send, and the receiver's status line. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Attempts per event; after the last failed one the event is recorded failed and the next one goes out. */
export const WEBHOOK_MAX_ATTEMPTS = 8;
export const WEBHOOK_RETRY_BASE_MS = 1000;
export const WEBHOOK_RETRY_MAX_MS = 5 * 60_000;
/** How long a lease keeps other instances off a webhook; renewed at every attempt, so it outlives one. */
export const WEBHOOK_LEASE_MS = 3 * WEBHOOK_TIMEOUT_MS;
/** The slow timer: due retries and webhooks whose lease ran out on a dead instance. */
export const WEBHOOK_POLL_MS = 5000;

const EVENTS_PER_ROUND = 100; // per webhook, so one busy webhook does not hold a round
const WEBHOOKS_PER_ROUND = 50;
const PARALLEL = 4;

/** The wait after `failed` failed attempts at one event: 1 s, 2 s, 4 s, … capped at WEBHOOK_RETRY_MAX_MS. */
export function retryDelayMs(failed: number): number {
  return Math.min(WEBHOOK_RETRY_MAX_MS, WEBHOOK_RETRY_BASE_MS * 2 ** Math.min(Math.max(failed - 1, 0), 30));
}

/** Sends one delivery; resolves with the receiver's status, rejects when no response came. */
export type Post = (url: string, body: string, headers: Record<string, string>, signal: AbortSignal) => Promise<number>;

/**
 * POSTs through an undici Agent whose connections resolve names with guardedLookup: a refused address fails the
 * attempt without a connection, checked at delivery time (DNS may have changed since the webhook was created).
 */
export function webhookPoster(allowPrivate: boolean, resolve: Resolver = systemResolver) {
  const agent = new Agent({
    connect: { lookup: guardedLookup(allowPrivate, resolve), timeout: WEBHOOK_TIMEOUT_MS },
    headersTimeout: WEBHOOK_TIMEOUT_MS,
    bodyTimeout: WEBHOOK_TIMEOUT_MS,
    keepAliveTimeout: 4000,
  });
  const post: Post = async (url, body, headers, signal) => {
    const host = hostOf(new URL(url));
    // An IP literal is connected to as is (no lookup): check it here.
    const refused = isIP(host) ? refusedWebhookAddress(host, allowPrivate) : undefined;
    if (refused) {
      throw new RefusedAddress(refused);
    }
    const res = await request(url, { method: "POST", body, headers, dispatcher: agent, signal });
    await res.body.dump({ limit: 64 * 1024 }).catch(() => {}); // what the receiver says is not kept
    return res.statusCode;
  };
  // Closing twice (a server closed again by a test's cleanup) is a no-op, not ClientDestroyedError.
  return { post, close: () => (agent.closed || agent.destroyed ? Promise.resolve() : agent.close()) };
}

/** The error of an attempt without a response, as the deliveries list shows it (no request or secret detail). */
export function describeFailure(err: unknown): string {
  for (let e = err as { name?: string; code?: string; cause?: unknown } | undefined, i = 0; e && i < 5; i++) {
    if (e instanceof RefusedAddress) {
      return e.message;
    }
    if (e.name === "TimeoutError" || /TIMEOUT/.test(e.code ?? "")) {
      return `no response within ${WEBHOOK_TIMEOUT_MS / 1000} s`;
    }
    if (typeof e.code === "string" && /^E[A-Z]+$/.test(e.code)) {
      return `connection failed (${e.code})`;
    }
    e = e.cause as typeof e;
  }
  return "request failed";
}

export interface RoundDeps {
  db: Db;
  certKey: Buffer;
  clock: Clock;
  logger: Logger;
  /** Names this deliverer in leases; unique per running process. */
  owner: string;
  post: Post;
  /** Aborts attempts in flight (shutdown); an aborted attempt is not recorded, the event goes out again later. */
  signal?: AbortSignal;
}

export interface RoundResult {
  /** Attempts made (recorded). */
  attempts: number;
  /** Some webhook has events left that this round did not get to. */
  more: boolean;
  /** The earliest retry this round scheduled. */
  nextDueAt: Date | undefined;
}

const wants = (w: LeasedWebhook, type: string) => w.events.includes("*") || w.events.includes(type);
const secretWarned = new Set<string>();

/**
 * One delivery round: leases the due webhooks with pending events and, for each, sends its events in id order, one
 * at a time, until one fails (a retry is scheduled), the round's share is used, or none is left. Time comes from
 * `clock`, so tests drive retries without waiting.
 */
export async function deliverRound(deps: RoundDeps): Promise<RoundResult> {
  const leased = await leaseWebhooks(deps.db, {
    owner: deps.owner,
    now: deps.clock.now(),
    leaseMs: WEBHOOK_LEASE_MS,
    limit: WEBHOOKS_PER_ROUND,
  });
  const result: RoundResult = { attempts: 0, more: leased.length === WEBHOOKS_PER_ROUND, nextDueAt: undefined };
  const queue = [...leased];
  const worker = async () => {
    for (let w = queue.shift(); w; w = queue.shift()) {
      await deliverWebhook(deps, w, result);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, worker));
  return result;
}

async function deliverWebhook(deps: RoundDeps, w: LeasedWebhook, result: RoundResult): Promise<void> {
  let secret: string;
  try {
    secret = decryptSecret(w.secretEncrypted, deps.certKey);
  } catch (err) {
    if (!secretWarned.has(w.id)) {
      secretWarned.add(w.id);
      deps.logger.warn("webhook secret cannot be decrypted; not delivering it", {
        webhookId: w.id,
        reason: err instanceof WrongKey ? err.message : "unreadable",
      });
    }
    return;
  }
  let cursor = w.cursor;
  let attempts = w.attempts;
  let sent = 0;
  const lease = (): LeaseRef => ({
    webhookId: w.id,
    owner: deps.owner,
    now: deps.clock.now(),
    leaseMs: WEBHOOK_LEASE_MS,
  });
  while (sent < EVENTS_PER_ROUND && !deps.signal?.aborted) {
    const rows = await listEvents(deps.db, { after: cursor, limit: EVENTS_PER_ROUND });
    const next = rows.find((r) => wants(w, r.type));
    const skipped = next ? rows.filter((r) => r.id < next.id).at(-1) : rows.at(-1);
    if (skipped && !(await skipTo(deps.db, lease(), Number(skipped.id)))) {
      return; // deleted, or the lease went to another instance
    }
    cursor = Number(skipped?.id ?? cursor);
    if (!next) {
      if (rows.length === EVENTS_PER_ROUND) {
        continue;
      }
      return;
    }
    const outcome = await attempt(deps, w, secret, next, attempts + 1);
    if (!outcome) {
      return; // shutting down: not recorded, sent again by whoever delivers next
    }
    sent++;
    const failed = !outcome.ok;
    const last = attempts + 1 >= WEBHOOK_MAX_ATTEMPTS;
    const retry = failed && !last;
    const at = deps.clock.now();
    const nextAttemptAt = retry ? new Date(at.getTime() + retryDelayMs(attempts + 1)) : null;
    const recorded = await recordAttempt(
      deps.db,
      { ...lease(), now: at },
      {
        eventId: Number(next.id),
        attempt: attempts + 1,
        ...outcome,
        cursor: retry ? cursor : Number(next.id),
        attempts: retry ? attempts + 1 : 0,
        nextAttemptAt,
      },
    );
    result.attempts++;
    if (!recorded) {
      return;
    }
    if (failed && last) {
      deps.logger.warn("webhook delivery failed after the last attempt; moving on to the next event", {
        webhookId: w.id,
        eventId: Number(next.id),
        attempts: attempts + 1,
      });
    }
    if (retry) {
      if (nextAttemptAt && (!result.nextDueAt || nextAttemptAt < result.nextDueAt)) {
        result.nextDueAt = nextAttemptAt;
      }
      return;
    }
    cursor = Number(next.id);
    attempts = 0;
  }
  result.more ||= sent >= EVENTS_PER_ROUND;
}

async function attempt(
  deps: RoundDeps,
  w: LeasedWebhook,
  secret: string,
  event: EventRow,
  n: number,
): Promise<{ ok: boolean; statusCode: number | null; error: string | null; durationMs: number } | undefined> {
  const body = JSON.stringify(eventJson(event));
  const timestamp = Math.floor(deps.clock.now().getTime() / 1000);
  const headers = deliveryHeaders(secret, { id: Number(event.id), type: event.type }, timestamp, body);
  const timeout = AbortSignal.timeout(WEBHOOK_TIMEOUT_MS);
  const signal = deps.signal ? AbortSignal.any([deps.signal, timeout]) : timeout;
  const started = performance.now();
  try {
    const status = await deps.post(w.url, body, headers, signal);
    const ok = status >= 200 && status < 300;
    return {
      ok,
      statusCode: status,
      error: ok ? null : `HTTP ${status}`,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    if (deps.signal?.aborted) {
      return undefined;
    }
    deps.logger.debug("webhook attempt failed", { webhookId: w.id, eventId: Number(event.id), attempt: n });
    return {
      ok: false,
      statusCode: null,
      error: describeFailure(err),
      durationMs: Math.round(performance.now() - started),
    };
  }
}

export interface WebhookWorkerDeps {
  config: Config;
  handle: DbHandle;
  feed: EventFeed;
  certKey: Buffer;
  clock: Clock;
  logger: Logger;
  owner: string;
}

/**
 * Starts delivering: a round at start, on every event feed wake, when a scheduled retry is due and every
 * WEBHOOK_POLL_MS; one round at a time. Returns its stop function (attempts in flight are aborted, leases released).
 */
export async function startWebhookDelivery(deps: WebhookWorkerDeps): Promise<() => Promise<void>> {
  const { logger } = deps;
  // Unique per process: two instances configured with one INSTANCE_ID (or one host and pid) must not share leases.
  const owner = `${deps.owner}#${randomBytes(4).toString("hex")}`;
  const poster = webhookPoster(deps.config.WEBHOOK_ALLOW_PRIVATE);
  const stopping = new AbortController();
  const round: RoundDeps = {
    db: deps.handle.db,
    certKey: deps.certKey,
    clock: deps.clock,
    logger,
    owner,
    post: poster.post,
    signal: stopping.signal,
  };
  let failing = false;
  let due: NodeJS.Timeout | undefined;

  const schedule = (at: Date | undefined) => {
    if (!at || stopping.signal.aborted) {
      return;
    }
    clearTimeout(due);
    due = setTimeout(kick, Math.max(0, at.getTime() - deps.clock.now().getTime()) + 10);
    due.unref();
  };
  const runner = coalesced(async () => {
    try {
      const r = await deliverRound(round);
      schedule(r.nextDueAt);
      if (failing) {
        logger.info("webhook delivery: database reachable again");
        failing = false;
      }
      return r.more;
    } catch (err) {
      if (!failing && !stopping.signal.aborted) {
        logger.warn("webhook delivery round failed; retrying", { err });
      }
      failing = true;
      return false;
    }
  }, stopping.signal);
  const kick = runner.trigger;

  const unsubscribe = deps.feed.subscribe(kick);
  const timer = setInterval(kick, WEBHOOK_POLL_MS);
  timer.unref();
  kick();
  return async () => {
    if (stopping.signal.aborted) {
      return;
    }
    stopping.abort();
    unsubscribe();
    clearInterval(timer);
    clearTimeout(due);
    await runner.idle();
    await releaseWebhookLeases(deps.handle.db, owner).catch(() => {});
    await poster.close();
  };
}
