import { hostname } from "node:os";
import { createApp, defaultNodeOf } from "./api/app.js";
import type { Deps } from "./api/deps.js";
import type { Config } from "./config/env.js";
import { certEncryptionKey } from "./config/secrets.js";
import type { DbHandle } from "./db/client.js";
import { listCertificates } from "./db/repo/certificates.js";
import { countReplicasByHealth } from "./db/repo/locations.js";
import { loadDeployments, loadSnapshot } from "./db/repo/snapshot.js";
import { systemTxtResolver, type TxtResolver } from "./domains/verification.js";
import { EventFeed } from "./events/feed.js";
import { refuseDisallowedAddresses } from "./health/address-guard.js";
import { type CheckDefaults, cronSchedule, HealthChecker } from "./health/checker.js";
import { createHttpProbe } from "./health/http-probe.js";
import type { Probe } from "./health/probe.js";
import { type Clock, systemClock } from "./lib/clock.js";
import { type Logger, loggerFor } from "./lib/logger.js";
import { Metrics } from "./lib/metrics.js";
import { packageVersion } from "./lib/package-root.js";
import { ConfigCache, type Snapshot } from "./provider/config-cache.js";
import { PollTracker } from "./provider/pollers.js";
import { dbLedger } from "./provider/revisions.js";
import { type FallbackProxy, renderSettings } from "./provider/settings.js";
import { replicaAllowList } from "./render/address.js";
import type { RenderSettings } from "./render/types.js";

export interface WiringOptions {
  logger?: Logger;
  clock?: Clock;
  /** The bundled proxy, when it runs: `least-conn` deployments are rendered through it. */
  fallbackProxy?: FallbackProxy;
  /** Replace the HTTP probe (tests); replica addresses are still checked against REPLICA_ALLOWED_CIDRS. */
  probe?: Probe;
  /** Replace the node-cron schedule (tests drive rounds with checker.runRound()). */
  schedule?: (tick: () => void) => () => void;
  /** Render this snapshot source instead of the database, with these settings (the render bench). */
  load?: () => Promise<Snapshot>;
  settings?: RenderSettings;
  /** AES-256 key for uploaded private keys; by default CERT_ENCRYPTION_KEY or the key kept in DATA_DIR. */
  certKey?: Buffer;
  version?: string;
  /** The registry to count in (the server shares it with the bundled proxy); by default a new one. */
  metrics?: Metrics;
  /** TXT lookups for domain verification (tests inject one); by default DOMAIN_VERIFICATION_DNS or the system's. */
  resolveTxt?: TxtResolver;
}

/** Everything one instance serves from, built but not started: no socket, no timer, no LISTEN yet. */
export interface Wiring {
  app: ReturnType<typeof createApp>;
  deps: Deps;
  cache: ConfigCache;
  /** Built whether or not HEALTH_ENABLED is set; the API only gets it (and the caller only starts it) when it is. */
  checker: HealthChecker;
  /** Stops the checker, closes the probe's connections and the cache's timers. The database stays open. */
  close(): Promise<void>;
}

export function healthDefaults(config: Config): CheckDefaults {
  return {
    path: config.HEALTH_PATH,
    intervalSeconds: config.HEALTH_INTERVAL_SECONDS,
    timeoutSeconds: config.HEALTH_TIMEOUT_SECONDS,
    expectedStatus: config.HEALTH_EXPECTED_STATUS,
    concurrency: config.HEALTH_CONCURRENCY,
    rise: config.HEALTH_RISE,
    tickSeconds: config.HEALTH_TICK_SECONDS,
  };
}

/** What the scrape-time gauges read: the served config, the pollers, and one query each for replicas and certificates. */
function observeWiring(
  metrics: Metrics,
  { cache, pollers, handle, clock }: { cache: ConfigCache; pollers: PollTracker; handle: DbHandle; clock: Clock },
): void {
  metrics.observe({
    now: () => clock.now(),
    config: () => {
      const cur = cache.current();
      return {
        stale: cache.stale,
        served: cur && {
          revision: cur.revision,
          bytes: cur.bytes,
          // A `middleware` warning renders the row with a setting ignored; every other kind leaves the row out.
          skippedRows: cur.warnings.filter((w) => w.kind !== "middleware").length,
        },
      };
    },
    pollers: () => {
      const hash = cache.current()?.hash;
      return pollers.list().map((p) => ({
        node: p.node,
        lastPollAt: new Date(p.lastPollAt),
        current: hash !== undefined && p.lastHash === hash,
      }));
    },
    replicasByHealth: () => countReplicasByHealth(handle.db),
    certificates: () => listCertificates(handle.db),
  });
}

/**
 * The one place the served config, the health checker and the HTTP app are put together, for the server, the
 * API tests and the bench alike. The caller owns the sockets, the change feed and the order of starting.
 */
export async function buildApp(config: Config, handle: DbHandle, opts: WiringOptions = {}): Promise<Wiring> {
  const logger = opts.logger ?? loggerFor(config);
  const metrics = opts.metrics ?? new Metrics();
  const clock = opts.clock ?? systemClock;
  const certKey = opts.certKey ?? certEncryptionKey(config, logger);
  const owner = config.INSTANCE_ID ?? `${hostname()}-${process.pid}`;
  const settings = opts.settings ?? renderSettings(config, opts.fallbackProxy);
  const cache = new ConfigCache({
    load: opts.load ?? (() => loadSnapshot(handle.db, certKey)),
    // A substituted snapshot source (the bench) re-reads everything on every change.
    ...(opts.load ? {} : { loadDeployments: (ids: readonly string[]) => loadDeployments(handle.db, ids) }),
    fullReloadMs: config.RENDER_FULL_RELOAD_SECONDS * 1000,
    settings,
    clock,
    logger,
    metrics,
    coalesceMs: config.RENDER_COALESCE_MS,
    // A substituted snapshot source (the bench) has no database to keep revisions in.
    ...(opts.load ? {} : { ledger: dbLedger(handle.db, { retention: config.REVISION_RETENTION, logger }) }),
    guard: { maxRemovedPercent: config.GUARD_MAX_REMOVED_PERCENT, minRouters: config.GUARD_MIN_ROUTERS },
  });
  const http = createHttpProbe(clock); // opens connections only when it probes
  const checker = new HealthChecker({
    db: handle.db,
    probe: refuseDisallowedAddresses(opts.probe ?? http.probe, replicaAllowList(config.REPLICA_ALLOWED_CIDRS), clock),
    clock,
    logger,
    metrics,
    schedule: opts.schedule ?? (await cronSchedule(config.HEALTH_TICK_SECONDS)),
    owner,
    defaults: healthDefaults(config),
    // Also reaches us through NOTIFY; calling it here lets a read right after a round see the round.
    onTransitions: (transitions) =>
      cache.invalidate({ cause: "health", actor: owner }, { deployments: transitions.map((t) => t.deploymentId) }),
  });
  const pollers = new PollTracker();
  observeWiring(metrics, { cache, pollers, handle, clock });
  const deps: Deps = {
    config,
    handle,
    cache,
    pollers,
    ...(config.HEALTH_ENABLED ? { checker } : {}),
    clock,
    logger,
    metrics,
    version: opts.version ?? packageVersion(),
    settings,
    certKey,
    nodeOf: defaultNodeOf,
    resolveTxt: opts.resolveTxt ?? systemTxtResolver(config.DOMAIN_VERIFICATION_DNS),
    events: new EventFeed(),
    instanceId: owner,
  };
  return {
    app: createApp(deps),
    deps,
    cache,
    checker,
    async close() {
      await checker.stop();
      await http.close();
      cache.close();
    },
  };
}
