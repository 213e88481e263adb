import type { RoutingNotice } from "../db/change-feed.js";
import type { Logger } from "../lib/logger.js";

/** What a LISTEN subscription reports (see DbHandle.listen). */
export interface ChangeEvents {
  /** One notification, parsed (parseRoutingNotice). */
  onNotice(notice: RoutingNotice): void;
  /** LISTEN is in place (at subscribe and after every reconnect): notifications may have been lost meanwhile. */
  onConnect(): void;
  /** LISTEN was lost: until the next onConnect no notification arrives. */
  onDisconnect(): void;
}

/** Subscribes to the change feed; returns the unsubscribe. */
export type ListenForChanges = (events: ChangeEvents) => Promise<() => Promise<void>>;

export interface RefresherOptions {
  /** Loads and installs the whole table; a throw keeps the last one. */
  reloadAll: () => Promise<void>;
  /** Loads and installs only these deployments' entries. Absent: a deployment's change reloads everything. */
  reloadDeployments?: ((ids: readonly string[]) => Promise<void>) | undefined;
  /**
   * Refreshes the CPU readings of the table's replicas (no database work when the table is empty). Absent: every
   * tick reloads everything, readings included.
   */
  refreshReadings?: (() => Promise<void>) | undefined;
  /** Subscribes to the change feed. Absent, or failing: every tick reloads everything (polling, as without LISTEN). */
  listen?: ListenForChanges | undefined;
  /** The tick: CPU readings while following the change feed, the whole table while not. */
  intervalMs: number;
  /** The safety net while following the change feed: a notification can be lost, a trigger can miss a change. */
  fullIntervalMs: number;
  /** Notifications within this window share one load. */
  debounceMs: number;
  /** More deployments changed than this in one batch: one full reload reads less than their rows one by one. */
  maxBatch?: number;
  logger: Logger;
}

export interface Refresher {
  /** Reloads everything now; resolves when a full reload that started after this call has finished. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** maxBatch's default. */
const DEFAULT_MAX_BATCH = 1000;

/**
 * Keeps the proxy's table fresh. While it follows the change feed, a notification naming a deployment reloads only
 * that deployment (debounced, coalesced), the empty payload and every (re)connect reload everything, the tick reads
 * only CPU readings (they send no notification), and a full reload runs every `fullIntervalMs` as a safety net.
 * Without the feed it polls the whole table every tick. One load at a time, in order: a full reload first, then
 * changed deployments, then readings; a load that fails is made good by a full reload on the next tick.
 */
export async function startRefresher(opts: RefresherOptions): Promise<Refresher> {
  const { logger } = opts;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  let following = false;
  let stopped = false;
  let wantAll = false;
  let wantReadings = false;
  /** A load failed: the next tick reloads everything instead of reading CPU only. */
  let dirty = false;
  const changed = new Set<string>();
  /** Callers of refresh() waiting for the next full reload to finish. */
  let fullWaiters: (() => void)[] = [];

  let busy = false;
  let running: Promise<void> = Promise.resolve();
  const run = async (what: string, load: () => Promise<void>) => {
    try {
      await load();
    } catch (err) {
      dirty = true;
      logger.warn(`proxy table ${what} failed; keeping the last table`, { err });
    }
  };
  /** The next load to run, taken synchronously (so a request arriving meanwhile is never lost). */
  const next = (): (() => Promise<void>) | undefined => {
    if (stopped) {
      return undefined;
    }
    if (!wantAll && changed.size > 0 && (!opts.reloadDeployments || changed.size > maxBatch)) {
      wantAll = true;
    }
    if (wantAll) {
      // Everything noted before the load starts is covered by it; anything noted after goes round again.
      wantAll = false;
      wantReadings = false;
      changed.clear();
      const waiters = fullWaiters;
      fullWaiters = [];
      return async () => {
        dirty = false; // set again by run() if this one fails
        try {
          await run("refresh", opts.reloadAll);
        } finally {
          for (const w of waiters) {
            w();
          }
        }
      };
    }
    const reloadDeployments = opts.reloadDeployments;
    if (changed.size > 0 && reloadDeployments) {
      const ids = [...changed];
      changed.clear();
      return () => run("update", () => reloadDeployments(ids));
    }
    if (wantReadings && opts.refreshReadings) {
      wantReadings = false;
      return () => run("CPU refresh", opts.refreshReadings as () => Promise<void>);
    }
    return undefined;
  };
  const kick = () => {
    if (busy) {
      return; // the running loop takes what was just noted
    }
    busy = true;
    running = (async () => {
      for (let load = next(); load; load = next()) {
        await load();
      }
      busy = false; // same synchronous step as the last next(): nothing noted in between is missed
    })();
  };

  const refresh = (): Promise<void> => {
    if (stopped) {
      return Promise.resolve();
    }
    wantAll = true;
    const done = new Promise<void>((resolve) => fullWaiters.push(resolve));
    kick();
    return done;
  };
  let debounce: NodeJS.Timeout | undefined;
  const soon = () => {
    debounce ??= setTimeout(() => {
      debounce = undefined;
      kick();
    }, opts.debounceMs);
  };
  const events: ChangeEvents = {
    onNotice(notice) {
      if (notice.kind === "deployment") {
        changed.add(notice.id);
      } else if (notice.kind === "all") {
        wantAll = true;
      } else {
        return; // a freeze or a confirmation: what Traefik is served, nothing the proxy routes on
      }
      soon();
    },
    onConnect() {
      following = true;
      wantAll = true;
      soon();
    },
    onDisconnect() {
      following = false; // poll until LISTEN is back
    },
  };
  let unlisten: (() => Promise<void>) | undefined;
  if (opts.listen) {
    try {
      unlisten = await opts.listen(events);
    } catch (err) {
      following = false;
      logger.warn("proxy LISTEN failed; reloading the whole table every tick", { err });
    }
  }
  const tick = setInterval(() => {
    if (following && !dirty && opts.refreshReadings) {
      wantReadings = true;
    } else {
      wantAll = true;
    }
    kick();
  }, opts.intervalMs);
  tick.unref();
  const safetyNet = setInterval(() => {
    wantAll = true;
    kick();
  }, opts.fullIntervalMs);
  safetyNet.unref();
  return {
    refresh,
    async stop() {
      stopped = true;
      clearInterval(tick);
      clearInterval(safetyNet);
      clearTimeout(debounce);
      await unlisten?.().catch(() => {});
      await running;
      for (const w of fullWaiters) {
        w();
      }
      fullWaiters = [];
    },
  };
}
