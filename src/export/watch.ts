// `export --watch`: re-export on every change signal and on an interval (the safety net for a missed NOTIFY, or the
// poll of an HTTP source), one export at a time, until stopped.

import { coalesced } from "../lib/coalesce.js";

export interface WatchDeps {
  /** One export; resolves to a log line when something changed, undefined when nothing did. Errors are logged. */
  exportOnce(): Promise<string | undefined>;
  /** Subscribes to change signals (the database's NOTIFY); resolves to its unsubscribe. */
  subscribe?(onChange: () => void): Promise<() => Promise<void>>;
  intervalMs: number;
  log(line: string): void;
  /** Aborted on SIGINT/SIGTERM: the loop finishes the export in flight and returns. */
  signal: AbortSignal;
}

/** Runs until `signal` aborts; changes arriving during an export coalesce into one more export after it. */
export async function runWatch(deps: WatchDeps): Promise<void> {
  const { trigger, idle } = coalesced(async () => {
    try {
      const line = await deps.exportOnce();
      if (line) {
        deps.log(line);
      }
    } catch (err) {
      deps.log(`export failed, the folder keeps its last export: ${(err as Error).message}`);
    }
  }, deps.signal);

  let unsubscribe: (() => Promise<void>) | undefined;
  if (deps.subscribe) {
    try {
      unsubscribe = await deps.subscribe(trigger);
    } catch (err) {
      deps.log(`LISTEN failed, re-exporting every ${deps.intervalMs / 1000}s only: ${(err as Error).message}`);
    }
  }
  trigger();
  const timer = setInterval(trigger, deps.intervalMs);
  await new Promise<void>((resolve) => {
    if (deps.signal.aborted) {
      resolve();
    }
    deps.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  clearInterval(timer);
  await unsubscribe?.().catch(() => {});
  await idle();
}
