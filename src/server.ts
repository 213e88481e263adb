import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { serve } from "@hono/node-server";
import { createApp, defaultNodeOf } from "./api/app.js";
import type { Config } from "./config/env.js";
import { certEncryptionKey } from "./config/secrets.js";
import { type DbHandle, openDb } from "./db/client.js";
import { migrate } from "./db/migrate.js";
import { loadSnapshot } from "./db/repo/snapshot.js";
import { refuseDisallowedAddresses } from "./health/address-guard.js";
import { type CheckDefaults, cronSchedule, HealthChecker } from "./health/checker.js";
import { createHttpProbe, type Probe } from "./health/probe.js";
import { type Clock, systemClock } from "./lib/clock.js";
import { createLogger, type Logger } from "./lib/logger.js";
import { packageVersion } from "./lib/package-root.js";
import { startChangeFeed } from "./provider/change-feed.js";
import { ConfigCache } from "./provider/config-cache.js";
import { PollTracker } from "./provider/pollers.js";
import { proxyBindHost, resolveProxySecret } from "./proxy/config.js";
import { proxyDbDeps } from "./proxy/from-db.js";
import { startProxy } from "./proxy/server.js";
import { replicaAllowList } from "./render/address.js";
import type { RenderSettings } from "./render/types.js";
import { startExpiryWarnings } from "./tls/expiry.js";

/** Weight-0 placeholder for deployments without a healthy replica (never dialled: Traefik skips weight 0). */
export const NO_REPLICA_URL = "http://127.0.0.1:9";

/** Render settings; `fallbackProxy` routes `least-conn` deployments through the bundled proxy. */
export function renderSettings(config: Config, fallbackProxy?: { url: string; secret: string }): RenderSettings {
  return {
    ...(fallbackProxy ? { fallbackProxy } : {}),
    entryPoints: { web: config.ENTRYPOINT_WEB, websecure: config.ENTRYPOINT_WEBSECURE },
    noReplicaUrl: NO_REPLICA_URL,
    ...(config.TRAEFIK_HEALTHCHECK
      ? {
          traefikHealthCheck: {
            path: config.HEALTH_PATH,
            intervalSeconds: config.HEALTH_INTERVAL_SECONDS,
            timeoutSeconds: config.HEALTH_TIMEOUT_SECONDS,
            expectedStatus: config.HEALTH_EXPECTED_STATUS,
          },
        }
      : {}),
    ...(config.TRUSTED_PROXY_CIDRS.length > 0 ? { trustedProxyCidrs: config.TRUSTED_PROXY_CIDRS } : {}),
    ...(config.REPLICA_ALLOWED_CIDRS.length > 0
      ? { replicaAllowList: replicaAllowList(config.REPLICA_ALLOWED_CIDRS) }
      : {}),
  };
}

/** Where Traefik reaches the proxy: FALLBACK_PROXY_URL, else the address it listens on. */
export function fallbackProxyUrl(config: Config, listening?: string): string {
  if (config.FALLBACK_PROXY_URL) {
    return config.FALLBACK_PROXY_URL.replace(/\/$/, "");
  }
  if (listening) {
    return listening;
  }
  const host = proxyBindHost(config);
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.PROXY_PORT}`;
}

export interface Running {
  url: string;
  handle: DbHandle;
  cache: ConfigCache;
  checker: HealthChecker;
  /** URL of the embedded fallback proxy, when enabled. */
  proxyUrl: string | undefined;
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

/** Opens the database, migrates, renders once, then serves the API and the provider endpoint. */
export async function startServer(config: Config, opts: StartOptions = {}): Promise<Running> {
  const logger = opts.logger ?? createLogger(config.LOG_LEVEL);
  const clock = opts.clock ?? systemClock;
  const handle = opts.handle ?? (await openDb(config));
  await migrate(handle);
  const certKey = certEncryptionKey(config, logger);
  let cacheRef: ConfigCache | undefined; // the proxy reports failures before the cache exists
  const proxySecret = config.FALLBACK_ENABLED
    ? resolveProxySecret(config.FALLBACK_PROXY_SECRET, config.DATA_DIR, logger)
    : undefined;
  // The bundled least-CPU proxy, on its own port; it shares this instance's database handle.
  const proxy = proxySecret
    ? await startProxy({
        port: config.PROXY_PORT,
        host: proxyBindHost(config),
        ...proxyDbDeps(handle, { rise: config.HEALTH_RISE, logger, onTransition: () => cacheRef?.invalidate() }),
        secret: proxySecret,
        trustedCidrs: config.FALLBACK_TRUSTED_CIDRS,
        logger,
        clock,
        defaultIntervalSeconds: config.HEALTH_INTERVAL_SECONDS,
        replicaAllowList: replicaAllowList(config.REPLICA_ALLOWED_CIDRS),
        refreshMs: config.PROXY_REFRESH_MS,
        connectTimeoutMs: config.PROXY_CONNECT_TIMEOUT_MS,
        responseTimeoutMs: config.PROXY_RESPONSE_TIMEOUT_MS,
      })
    : undefined;
  const cache = new ConfigCache({
    load: () => loadSnapshot(handle.db, certKey),
    settings: renderSettings(
      config,
      proxySecret ? { url: fallbackProxyUrl(config, proxy?.url), secret: proxySecret } : undefined,
    ),
    clock,
    logger,
    coalesceMs: config.RENDER_COALESCE_MS,
  });
  cacheRef = cache;
  await cache.ensureFresh();
  const owner = config.INSTANCE_ID ?? `${hostname()}-${process.pid}`;
  const { probe, close: closeProbe } = createHttpProbe(clock);
  const checker = new HealthChecker({
    db: handle.db,
    probe: refuseDisallowedAddresses(opts.probe ?? probe, replicaAllowList(config.REPLICA_ALLOWED_CIDRS), clock),
    clock,
    logger,
    schedule: opts.schedule ?? (await cronSchedule(config.HEALTH_TICK_SECONDS)),
    owner,
    defaults: healthDefaults(config),
    onTransitions: () => cache.invalidate(),
  });
  if (config.HEALTH_ENABLED) {
    checker.start();
  }
  const stopExpiry = await startExpiryWarnings({ db: handle.db, logger, clock, days: config.CERT_EXPIRY_WARN_DAYS });
  const stopFeed = await startChangeFeed({ handle, cache, logger, intervalMs: config.CONFIG_REFRESH_SECONDS * 1000 });
  const app = createApp({
    config,
    handle,
    cache,
    pollers: new PollTracker(),
    ...(config.HEALTH_ENABLED ? { checker } : {}),
    clock,
    logger,
    version: packageVersion(),
    certKey,
    nodeOf: defaultNodeOf,
  });

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
    async close() {
      stopExpiry();
      await proxy?.close();
      await checker.stop();
      await closeProbe();
      await stopFeed();
      cache.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!opts.handle) {
        await handle.close();
      }
    },
  };
}
