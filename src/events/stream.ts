import type { Db } from "../db/client.js";
import { listEvents } from "../db/repo/events.js";
import type { EventFeed } from "./feed.js";
import { type EventJson, eventJson } from "./view.js";

/** A comment line every this often keeps proxies and load balancers from closing an idle stream. */
export const KEEP_ALIVE_MS = 15_000;
const BATCH = 500;

export interface EventStreamOptions {
  db: Db;
  feed: EventFeed;
  /** Send events with a greater id. */
  after: number;
  types?: readonly string[] | undefined;
  deploymentId?: string | undefined;
  /** Whether the caller may see an event of this deployment (null: not about one deployment). */
  visible: (deploymentId: string | null) => boolean;
  send: (e: EventJson) => Promise<void>;
  /** Writes the keep-alive comment. */
  keepAlive: () => Promise<void>;
  /** The client went away. */
  signal: AbortSignal;
  keepAliveMs?: number;
}

/**
 * Sends every matching event after `after`, then each new one as the feed announces it, until the client leaves or
 * the feed closes (server shutdown). A wake while events are being sent is kept, so none is missed; each
 * keep-alive also looks again, in case a wake never came.
 */
export async function pumpEvents(o: EventStreamOptions): Promise<void> {
  let cursor = o.after;
  let woken = true;
  let release: (() => void) | undefined;
  const wake = () => {
    woken = true;
    release?.();
  };
  const unsubscribe = o.feed.subscribe(wake);
  const unclose = o.feed.onClose(wake);
  o.signal.addEventListener("abort", wake);
  const over = () => o.signal.aborted || o.feed.closed;
  try {
    while (!over()) {
      if (woken) {
        woken = false;
        for (let more = true; more && !over(); ) {
          const rows = await listEvents(o.db, {
            after: cursor,
            types: o.types,
            deploymentId: o.deploymentId,
            limit: BATCH,
          });
          for (const row of rows) {
            if (over()) {
              return;
            }
            if (o.visible(row.deploymentId)) {
              await o.send(eventJson(row));
            }
            cursor = Number(row.id);
          }
          more = rows.length === BATCH;
        }
        continue;
      }
      const timedOut = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), o.keepAliveMs ?? KEEP_ALIVE_MS);
        release = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      release = undefined;
      if (timedOut && !over()) {
        await o.keepAlive();
        woken = true;
      }
    }
  } finally {
    unsubscribe();
    unclose();
    o.signal.removeEventListener("abort", wake);
  }
}
