import type { Logger } from "../lib/logger.js";

export interface RefresherOptions {
  /** Loads and installs a new table; a throw keeps the last one. */
  reload: () => Promise<void>;
  /** Subscribes to change notifications (LISTEN); returns the unsubscribe. */
  listen?: ((onChange: () => void) => Promise<() => Promise<void>>) | undefined;
  /** Safety-net interval: CPU readings send no notification, and a notification can be missed. */
  intervalMs: number;
  /** Notifications within this window share one reload. */
  debounceMs: number;
  logger: Logger;
}

export interface Refresher {
  /** Reloads now; resolves when a reload that started after this call has finished. */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/** Keeps the proxy's table fresh: on NOTIFY (debounced), on an interval, never two reloads at once. */
export async function startRefresher(opts: RefresherOptions): Promise<Refresher> {
  const { logger } = opts;
  let inflight: Promise<void> | undefined;
  let again = false;
  const refresh = (): Promise<void> => {
    if (inflight) {
      again = true; // the running loop goes round once more, so this caller sees a later state
      return inflight;
    }
    inflight = (async () => {
      try {
        do {
          again = false;
          await opts.reload();
        } while (again);
      } catch (err) {
        logger.warn("proxy table refresh failed; keeping the last table", { err });
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  let debounce: NodeJS.Timeout | undefined;
  const onChange = () => {
    debounce ??= setTimeout(() => {
      debounce = undefined;
      void refresh();
    }, opts.debounceMs);
  };
  let unlisten: (() => Promise<void>) | undefined;
  if (opts.listen) {
    try {
      unlisten = await opts.listen(onChange);
    } catch (err) {
      logger.warn("proxy LISTEN failed; relying on the refresh interval", { err });
    }
  }
  const timer = setInterval(() => void refresh(), opts.intervalMs);
  timer.unref();
  return {
    refresh,
    async stop() {
      clearInterval(timer);
      clearTimeout(debounce);
      await unlisten?.().catch(() => {});
      await inflight;
    },
  };
}
