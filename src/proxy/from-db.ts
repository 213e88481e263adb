import { parseRoutingNotice, ROUTING_CHANNEL } from "../db/change-feed.js";
import type { DbHandle } from "../db/client.js";
import { NotFound } from "../db/errors.js";
import type { RecordedTransition } from "../db/repo/health.js";
import { loadProxyCpu, loadProxyDeployments, loadProxySnapshot } from "../db/repo/proxy-table.js";
import { reportReplicaFailure } from "../health/report.js";
import type { Logger } from "../lib/logger.js";
import type { ProxyOptions, ReplicaFailure } from "./server.js";

export interface ProxyDbOptions {
  /** HEALTH_RISE: successes an unhealthy replica needs before it is routed again. */
  rise: number;
  logger: Logger;
  /** Called when a report changed a replica's health (the server invalidates its config cache). */
  onTransition?: (transition: RecordedTransition) => void;
}

/**
 * The proxy's database side: the whole routing snapshot, one deployment's rows, the table's CPU readings, LISTEN on
 * the routing channel (its payload names the deployment that changed), and failed connects recorded with
 * reportReplicaFailure, as `POST …/failures` records them.
 *
 * Without a LISTEN session (a transaction pooler and no DATABASE_LISTEN_URL) there is no `listen`, so the proxy
 * polls the whole table every PROXY_REFRESH_MS as it always did: nothing would tell it what changed.
 */
export function proxyDbDeps(
  handle: DbHandle,
  opts: ProxyDbOptions,
): Pick<ProxyOptions, "loadSnapshot" | "loadDeployments" | "loadReadings" | "listen" | "reportFailure"> {
  const deps = { db: handle.db, logger: opts.logger, rise: opts.rise, onTransition: opts.onTransition };
  return {
    loadSnapshot: () => loadProxySnapshot(handle.db),
    loadDeployments: (ids) => loadProxyDeployments(handle.db, ids),
    loadReadings: (ids) => loadProxyCpu(handle.db, ids),
    listen: handle.notifies
      ? (events) =>
          handle.listen(
            ROUTING_CHANNEL,
            (payload) => events.onNotice(parseRoutingNotice(payload)),
            () => events.onConnect(),
            () => events.onDisconnect(),
          )
      : undefined,
    async reportFailure(f: ReplicaFailure) {
      try {
        await reportReplicaFailure(deps, {
          deploymentId: f.deploymentId,
          locationId: f.replicaId,
          at: f.at,
          error: `reported: fallback proxy: ${f.error}`,
        });
      } catch (err) {
        if (!(err instanceof NotFound)) {
          throw err; // a replica deleted meanwhile needs no report
        }
      }
    },
  };
}
