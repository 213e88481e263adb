import type { Context } from "hono";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import type { TxtResolver } from "../domains/verification.js";
import type { EventFeed } from "../events/feed.js";
import type { HealthChecker } from "../health/checker.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import type { ConfigCache } from "../provider/config-cache.js";
import type { PollTracker } from "../provider/pollers.js";
import type { RenderSettings } from "../render/types.js";
import type { AuditNote, Caller } from "./identity.js";

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
  /** TXT lookups for domain ownership verification. */
  resolveTxt: TxtResolver;
  /** Wakes SSE streams when events are added (here or on another instance). */
  events: EventFeed;
  /** Names this instance (probe and delivery leases). */
  instanceId: string;
}

export type AppEnv = {
  Variables: {
    requestId: string;
    /**
     * Set by a write handler that knows it left the rendered config as it was (a replica's CPU figure, a failure
     * report that changed no health): the app then skips the cache invalidation every other write gets.
     */
    configUnchanged?: boolean;
    /** Who is calling, as revisions, freezes and audit rows name them: the token's name (set by the auth middleware). */
    actor?: string;
    /** The authenticated token of an /api/v1 request (src/api/scopes.ts). */
    caller?: Caller;
    /**
     * What a write handler tells the audit log beyond what the audit middleware works out itself: the resource it
     * wrote and its before → after changes (secrets already redacted).
     */
    audit?: AuditNote;
    /** Runs once the request's write transaction committed (a probe of a new replica must see its row). */
    afterCommit?: (() => void)[];
  };
};
