// Webhook delivery: one instance per webhook (lease), in event order, retried with backoff. STUB (issue 14).
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { EventFeed } from "./feed.js";

export interface WebhookWorkerDeps {
  config: Config;
  handle: DbHandle;
  feed: EventFeed;
  certKey: Buffer;
  clock: Clock;
  logger: Logger;
  owner: string;
}

/** Starts delivering; returns its stop function. */
export async function startWebhookDelivery(_deps: WebhookWorkerDeps): Promise<() => Promise<void>> {
  return async () => {};
}
