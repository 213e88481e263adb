import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { buildApp } from "./app-wiring.js";
import type { Config } from "./config/env.js";
import { certEncryptionKey } from "./config/secrets.js";
import { type DbHandle, openDb } from "./db/client.js";
import { migrate } from "./db/migrate.js";
import { startAuditRetention } from "./db/repo/audit.js";
import { startDomainVerificationJob, type TxtResolver } from "./domains/verification.js";
import { startEventFeed } from "./events/feed.js";
import { startWebhookDelivery } from "./events/webhook-worker.js";
import type { HealthChecker } from "./health/checker.js";
import { startDrainSweep } from "./health/drain.js";
import type { Probe } from "./health/probe.js";
import { type Clock, systemClock } from "./lib/clock.js";
import { type Logger, loggerFor } from "./lib/logger.js";
import { Metrics } from "./lib/metrics.js";
import { startChangeFeed } from "./provider/change-feed.js";
import type { ConfigCache } from "./provider/config-cache.js";
import { fallbackProxySecret, fallbackProxyUrl } from "./provider/settings.js";
import { proxyBindHost } from "./proxy/config.js";
import { proxyDbDeps } from "./proxy/from-db.js";
import { startProxy } from "./proxy/server.js";
import { replicaAllowList } from "./render/address.js";
import { type RolloutWorker, startRolloutWorker } from "./rollout/worker.js";
import { startExpiryWarnings } from "./tls/expiry.js";

export interface Running {
  url: string;
  handle: DbHandle;
  cache: ConfigCache;
  checker: HealthChecker;
  /** URL of the embedded fallback proxy, when enabled. */
  proxyUrl: string | undefined;
  /** Progressive rollouts' background worker (tests call `tick()` with an injected clock). */
  rollouts: RolloutWorker;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  clock?: Clock;
  /** Use this database instead of opening one from the config (tests). It is not closed on close(). */
  handle?: DbHandle;
  /** Replace the HTTP probe (tests). */
  probe?: Probe;
  /** Replace the node-cron schedule (tests drive rounds with checker.runRound()). */
  schedule?: (tick: () => void) => () => void;
  /** Replace the TXT lookups of domain verification (tests). */
  resolveTxt?: TxtResolver;
}

/** Opens the database, migrates, renders once, then serves the API and the provider endpoint. */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<Running> {
  const logger = opts.logger ?? loggerFor(config);
  const metrics = new Metrics(); // one registry for this instance: the API's, the checker's and the proxy's counts
  const clock = opts.clock ?? systemClock;
  const handle = opts.handle ?? (await openDb(config));
  await migrate(handle);
  const certKey = certEncryptionKey(config, logger); // a bad key fails startup before any port is opened
  const proxySecret = fallbackProxySecret(config, logger);
  // The bundled least-CPU proxy, on its own port; it shares this instance's database handle. A failure it reports
  // reaches the config cache through the change feed (NOTIFY), as one reported by a proxy in another process does.
  const proxy = proxySecret
    ? await startProxy({
        port: config.PROXY_PORT,
        host: proxyBindHost(config),
        ...proxyDbDeps(handle, { rise: config.HEALTH_RISE, logger }),
        secret: proxySecret,
        trustedCidrs: config.FALLBACK_TRUSTED_CIDRS,
        logger,
        metrics,
        clock,
        defaultIntervalSeconds: config.HEALTH_INTERVAL_SECONDS,
        replicaAllowList: replicaAllowList(config.REPLICA_ALLOWED_CIDRS),
        refreshMs: config.PROXY_REFRESH_MS,
        fullRefreshMs: config.PROXY_FULL_REFRESH_MS,
        connectTimeoutMs: config.PROXY_CONNECT_TIMEOUT_MS,
        responseTimeoutMs: config.PROXY_RESPONSE_TIMEOUT_MS,
        wsIdleTimeoutMs: config.PROXY_WS_IDLE_TIMEOUT_MS,
      })
    : undefined;
  const wiring = await buildApp(config, handle, {
    logger,
    metrics,
    clock,
    certKey,
    ...(proxySecret ? { fallbackProxy: { url: fallbackProxyUrl(config, proxy?.url), secret: proxySecret } } : {}),
    ...(opts.probe ? { probe: opts.probe } : {}),
    ...(opts.schedule ? { schedule: opts.schedule } : {}),
    ...(opts.resolveTxt ? { resolveTxt: opts.resolveTxt } : {}),
  });
  const { app, cache, checker } = wiring;
  // LISTEN first, then the first (full) read: every change committed after it is announced by deployment, so the
  // LISTEN's first connect needs no second full read (its "all" is merged into the first one).
  const stopFeed = await startChangeFeed({ handle, cache, logger, intervalMs: config.CONFIG_REFRESH_SECONDS * 1000 });
  await cache.ensureFresh();
  if (config.HEALTH_ENABLED) {
    checker.start();
  }
  const stopExpiry = await startExpiryWarnings({ db: handle.db, logger, clock, days: config.CERT_EXPIRY_WARN_DAYS });
  const { deps } = wiring;
  const stopEvents = await startEventFeed(deps.events, handle, logger);
  const stopWebhooks = await startWebhookDelivery({
    config,
    handle,
    feed: deps.events,
    certKey,
    clock,
    logger,
    owner: deps.instanceId,
  });
  const stopVerification = await startDomainVerificationJob({
    config,
    handle,
    resolveTxt: deps.resolveTxt,
    clock,
    logger,
  });
  const stopAudit = startAuditRetention({ handle, logger, days: config.AUDIT_RETENTION_DAYS });
  const rollouts = startRolloutWorker({ config, handle, clock, logger, owner: deps.instanceId });
  const stopDrainSweep = startDrainSweep({ handle, clock, logger });

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  logger.info("listening", { url, driver: handle.driver, fallbackProxy: proxy?.url ?? null });

  return {
    url,
    handle,
    cache,
    checker,
    proxyUrl: proxy?.url,
    rollouts,
    async close() {
      stopExpiry();
      await rollouts.stop();
      await stopDrainSweep();
      stopAudit();
      await stopVerification();
      await stopWebhooks();
      await stopEvents();
      await proxy?.close();
      await stopFeed();
      await wiring.close();
      // Streams ended above (stopEvents); a client that stopped reading must not hold the close for long.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const grace = setTimeout(() => (server as import("node:http").Server).closeAllConnections?.(), 2000);
      await closed;
      clearTimeout(grace);
      if (!opts.handle) {
        await handle.close();
      }
    },
  };
}
