import type { Context } from "hono";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import type { HealthChecker } from "../health/checker.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import type { ConfigCache } from "../provider/config-cache.js";
import type { PollTracker } from "../provider/pollers.js";
import type { RenderSettings } from "../render/types.js";

/** What the HTTP app needs from the rest of the house; built once by the wiring, passed to createApp. */
export interface Deps {
  config: Config;
  handle: DbHandle;
  cache: ConfigCache;
  pollers: PollTracker;
  /** Active health checker: probes a replica at once when it is registered or moves. */
  checker?: HealthChecker;
  clock: Clock;
  logger: Logger;
  /** This app's metrics registry (GET /metrics). */
  metrics: Metrics;
  version: string;
  /** What the served config is rendered with (a preview renders with the same). */
  settings: RenderSettings;
  /** AES-256 key for uploaded private keys. */
  certKey: Buffer;
  /** Names the Traefik instance behind a request (header or remote address). */
  nodeOf: (c: Context) => string;
}

export type AppEnv = {
  Variables: {
    requestId: string;
    /**
     * Set by a write handler that knows it left the rendered config as it was (a replica's CPU figure, a failure
     * report that changed no health): the app then skips the cache invalidation every other write gets.
     */
    configUnchanged?: boolean;
    /** Who is calling: `admin:<first 8 hex of sha256(token)>` (set by requireBearer on the admin API). */
    actor?: string;
  };
};
