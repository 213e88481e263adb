import { ROUTING_CHANNEL } from "../db/change-feed.js";
import type { DbHandle } from "../db/client.js";
import { readChangeSeq } from "../db/repo/snapshot.js";
import type { Logger } from "../lib/logger.js";
import type { ConfigCache } from "./config-cache.js";
import type { Cause } from "./revisions.js";

/** Learned from the database: the instance that made the change (if any) records who did. */
const FEED: Cause = { cause: "feed" };

export interface ChangeFeedDeps {
  handle: DbHandle;
  cache: ConfigCache;
  logger: Logger;
  intervalMs: number;
}

/**
 * Keeps the cache in step with the database when other instances (or hand-written SQL) change it:
 * LISTEN for the NOTIFY the triggers send, plus a poll of the change sequence as a safety net for missed
 * notifications. A failed poll marks the cache stale; the next good one re-renders.
 */
export async function startChangeFeed(deps: ChangeFeedDeps): Promise<() => Promise<void>> {
  const { handle, cache, logger } = deps;
  let lastSeq: string | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let polling = false;

  const subscribe = async () => {
    try {
      // onConnect fires on every (re)connect: anything sent while we were away is caught by re-rendering.
      unlisten = await handle.listen(
        ROUTING_CHANNEL,
        () => cache.invalidate(FEED),
        () => cache.invalidate(FEED),
      );
    } catch (err) {
      logger.warn("LISTEN failed; relying on polling", { err });
    }
  };

  const poll = async () => {
    if (polling) {
      return;
    }
    polling = true;
    try {
      const seq = await readChangeSeq(handle.db);
      if (seq !== lastSeq || cache.stale) {
        lastSeq = seq;
        cache.invalidate(FEED);
      }
      if (!unlisten) {
        await subscribe();
      }
    } catch (err) {
      cache.markStale("database unavailable");
      logger.warn("change poll failed", { err });
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
