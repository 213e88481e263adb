import { parseRoutingNotice, ROUTING_CHANNEL } from "../db/change-feed.js";
import type { DbHandle } from "../db/client.js";
import { readChangeSeq } from "../db/repo/snapshot.js";
import type { Logger } from "../lib/logger.js";
import type { ChangeScope, ConfigCache } from "./config-cache.js";
import type { Cause } from "./revisions.js";

/** Learned from the database: the instance that made the change (if any) records who did. */
const FEED: Cause = { cause: "feed" };

export interface ChangeFeedDeps {
  handle: DbHandle;
  cache: ConfigCache;
  logger: Logger;
  intervalMs: number;
}

/** What a NOTIFY payload asks the cache to re-render (migration 0009: `d:<id>`, `c`, or everything). */
export function scopeOf(payload: string): ChangeScope {
  const notice = parseRoutingNotice(payload);
  return notice.kind === "deployment" ? { deployments: [notice.id] } : notice.kind === "control" ? "control" : "all";
}

/**
 * Keeps the cache in step with the database when other instances (or hand-written SQL) change it: LISTEN for the
 * NOTIFY the triggers send (each names the deployment it changed, so only that one is re-read), plus a poll of
 * the change sequence as a safety net. The sequence moving while no notification arrived for a whole poll interval
 * means notifications were missed: everything is read again, as after a reconnect of the LISTEN session. Without a
 * LISTEN session (a transaction pooler) every move of the sequence reads everything. A failed poll marks the
 * cache stale; the next good one retries.
 */
export async function startChangeFeed(deps: ChangeFeedDeps): Promise<() => Promise<void>> {
  const { handle, cache, logger } = deps;
  let lastSeq: string | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let polling = false;
  let lostAt: number | undefined; // when the LISTEN session was lost, while it is
  let listenFailing = false; // the first LISTEN (or a retry from the poll) failed: logged once
  let pollFailing = false; // an outage is logged when it starts and when it ends, not at every poll
  let heard = false; // a notification arrived since the last poll
  let suspect = false; // the sequence moved without a notification: one more interval, then a full read
  let settle = false; // polling only: read once more after a move (its transaction may not have committed yet)

  if (!handle.notifies) {
    logger.warn(
      "DATABASE_URL is a transaction pooler and DATABASE_LISTEN_URL is unset: no LISTEN, changes made by other " +
        "instances are picked up by polling only",
      { intervalMs: deps.intervalMs },
    );
  }

  const subscribe = async () => {
    try {
      // onConnect fires on every (re)connect: anything sent while we were away is caught by re-rendering.
      unlisten = await handle.listen(
        ROUTING_CHANNEL,
        (payload) => {
          heard = true;
          cache.invalidate(FEED, scopeOf(payload));
        },
        () => {
          if (lostAt !== undefined) {
            logger.info("change feed: LISTEN re-established; full refresh", { downMs: Date.now() - lostAt });
            lostAt = undefined;
          }
          cache.invalidate(FEED);
        },
        (err) => {
          lostAt = Date.now();
          // One line per loss, none per attempt; polling keeps the config current meanwhile.
          logger.warn("change feed: LISTEN connection lost; reconnecting with backoff, polling meanwhile", { err });
        },
      );
      if (listenFailing) {
        logger.info("change feed: LISTEN established");
        listenFailing = false;
      }
    } catch (err) {
      if (!listenFailing) {
        logger.warn("LISTEN failed; relying on polling, retrying at each poll", { err });
      }
      listenFailing = true;
    }
  };

  const poll = async () => {
    if (polling) {
      return;
    }
    polling = true;
    try {
      const seq = await readChangeSeq(handle.db);
      const listening = handle.notifies && unlisten !== undefined && lostAt === undefined;
      if (lastSeq === undefined) {
        // With LISTEN, the first read came after it was in place: nothing was missed. Without, a change between the
        // first read and this poll would be: read once more.
        lastSeq = seq;
        if (!listening) {
          cache.invalidate(FEED, "all");
        }
      } else if (seq !== lastSeq) {
        if (heard) {
          lastSeq = seq; // notifications came: they named what changed
          suspect = false;
        } else if (!listening || suspect) {
          if (listening) {
            logger.warn("change feed: the change sequence moved without a notification; full refresh");
          }
          cache.invalidate(FEED, "all");
          lastSeq = seq;
          suspect = false;
          // The sequence steps inside the writing transaction, before its commit: this read may not see the rows
          // yet. Without notifications nothing else would tell us, so the next poll reads once more.
          settle = !listening;
        } else {
          suspect = true; // a notification can trail its commit by a moment: look again at the next poll
        }
      } else if (settle) {
        settle = false;
        cache.invalidate(FEED, "all");
      }
      heard = false;
      cache.reportMismatches();
      if (cache.fullReloadDue()) {
        cache.invalidate(FEED, "control"); // the render it starts reads everything and compares (config-cache.ts)
      }
      if (cache.stale) {
        cache.invalidate(FEED, "control"); // the failed render kept what it had to read: retry it
      }
      if (pollFailing) {
        logger.info("change poll: database reachable again");
        pollFailing = false;
      }
      if (!unlisten) {
        await subscribe();
      }
    } catch (err) {
      cache.markStale("database unavailable");
      if (!pollFailing) {
        logger.warn("change poll failed; serving the last config marked stale until the database answers", { err });
      }
      pollFailing = true;
    } finally {
      polling = false;
    }
  };

  await subscribe();
  const timer = setInterval(() => void poll(), deps.intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await unlisten?.().catch(() => {});
  };
}
