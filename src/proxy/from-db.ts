import type { DbHandle } from "../db/client.js";
import { NotFound } from "../db/errors.js";
import type { RecordedTransition } from "../db/repo/health.js";
import { reportFailure } from "../db/repo/health.js";
import { loadProxySnapshot } from "../db/repo/proxy-table.js";
import { logTransitions } from "../health/checker.js";
import type { Logger } from "../lib/logger.js";
import { ROUTING_CHANNEL } from "../provider/change-feed.js";
import type { ProxyOptions, ReplicaFailure } from "./server.js";

export interface ProxyDbOptions {
  /** HEALTH_RISE: successes an unhealthy replica needs before it is routed again. */
  rise: number;
  logger: Logger;
  /** Called when a report changed a replica's health (the server invalidates its config cache). */
  onTransition?: (transition: RecordedTransition) => void;
}

/**
 * The proxy's database side: the routing snapshot, LISTEN on the routing channel, and failed connects
 * recorded through the same passive-failure path as `POST …/failures`.
 */
export function proxyDbDeps(
  handle: DbHandle,
  opts: ProxyDbOptions,
): Pick<ProxyOptions, "loadSnapshot" | "listen" | "reportFailure"> {
  return {
    loadSnapshot: () => loadProxySnapshot(handle.db),
    listen: (onChange) => handle.listen(ROUTING_CHANNEL, onChange, onChange),
    async reportFailure(f: ReplicaFailure) {
      try {
        const { transition } = await reportFailure(
          handle.db,
          f.deploymentId,
          f.replicaId,
          { ok: false, at: f.at, error: `reported: fallback proxy: ${f.error}` },
          { rise: opts.rise },
        );
        if (transition) {
          logTransitions(opts.logger, [transition]);
          opts.onTransition?.(transition);
        }
      } catch (err) {
        if (!(err instanceof NotFound)) {
          throw err; // a replica deleted meanwhile needs no report
        }
      }
    },
  };
}
