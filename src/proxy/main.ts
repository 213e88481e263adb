import { loadConfig } from "../config/env.js";
import { openDb } from "../db/client.js";
import { systemClock } from "../lib/clock.js";
import { survivePostgresClosedSocketWrites } from "../lib/driver-guard.js";
import { errorLine, loggerFor } from "../lib/logger.js";
import { exitOnSignals } from "../lib/shutdown.js";
import { replicaAllowList } from "../render/address.js";
import { proxyBindHost, resolveProxySecret } from "./config.js";
import { proxyDbDeps } from "./from-db.js";
import { startProxy } from "./server.js";

/** Standalone fallback proxy (`node dist/src/proxy/main.js`): needs PostgreSQL, which it shares with the server. */
export async function main(): Promise<void> {
  const config = loadConfig();
  const logger = loggerFor(config);
  survivePostgresClosedSocketWrites(logger);
  if (!config.DATABASE_URL) {
    // PGlite is single-process: the server owns it, so the proxy then runs inside the server instead.
    throw new Error("the standalone proxy needs DATABASE_URL (with embedded PGlite, run it inside the server)");
  }
  const handle = await openDb({ ...config, maxConnections: 2 });
  const running = await startProxy({
    port: config.PROXY_PORT,
    host: proxyBindHost(config),
    ...proxyDbDeps(handle, { rise: config.HEALTH_RISE, logger }),
    secret: resolveProxySecret(config.FALLBACK_PROXY_SECRET, config.DATA_DIR, logger),
    trustedCidrs: config.FALLBACK_TRUSTED_CIDRS,
    logger,
    clock: systemClock,
    defaultIntervalSeconds: config.HEALTH_INTERVAL_SECONDS,
    replicaAllowList: replicaAllowList(config.REPLICA_ALLOWED_CIDRS),
    refreshMs: config.PROXY_REFRESH_MS,
    fullRefreshMs: config.PROXY_FULL_REFRESH_MS,
    connectTimeoutMs: config.PROXY_CONNECT_TIMEOUT_MS,
    responseTimeoutMs: config.PROXY_RESPONSE_TIMEOUT_MS,
    wsIdleTimeoutMs: config.PROXY_WS_IDLE_TIMEOUT_MS,
  });
  exitOnSignals(logger, () => running.close().then(() => handle.close()));
}

main().catch((err: unknown) => {
  process.stderr.write(`obiente-router proxy: ${errorLine(err)}\n`); // never a database error's message (parameters)
  process.exit(1);
});
