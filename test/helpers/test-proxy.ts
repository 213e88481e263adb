import type { LbAlgo, Protocol } from "../../schema/enums.js";
import { deploymentLocations, deploymentRouting, deployments } from "../../schema/tables.js";
import type { Db, DbHandle } from "../../src/db/client.js";
import { silentLogger } from "../../src/lib/logger.js";
import { proxyDbDeps } from "../../src/proxy/from-db.js";
import { type ProxyOptions, type RunningProxy, startProxy } from "../../src/proxy/server.js";
import { fakeClock } from "./replica.js";

/** Where a test proxy reads its table: a test database (wired as the server wires it), or stubs. */
export type ProxySource = DbHandle | Pick<ProxyOptions, "loadSnapshot" | "reportFailure" | "listen">;

/**
 * The bundled fallback proxy on 127.0.0.1, an ephemeral port, silent, with HEALTH_RISE 3, a fresh fake clock,
 * HEALTH_INTERVAL_SECONDS 30, and 1 s refresh, connect and response timeouts; `opts` overrides any of these.
 */
export function startTestProxy(
  source: ProxySource,
  opts: Partial<ProxyOptions> & { secret: string },
): Promise<RunningProxy> {
  const deps = "loadSnapshot" in source ? source : proxyDbDeps(source, { rise: 3, logger: silentLogger });
  return startProxy({
    port: 0,
    host: "127.0.0.1",
    ...deps,
    logger: silentLogger,
    clock: fakeClock(),
    defaultIntervalSeconds: 30,
    refreshMs: 1000,
    connectTimeoutMs: 1000,
    responseTimeoutMs: 1000,
    ...opts,
  });
}

/** A replica row of a seeded deployment: address defaults to 127.0.0.1 and healthStatus to healthy. */
export type SeedReplica = Omit<typeof deploymentLocations.$inferInsert, "deploymentId" | "address"> & {
  address?: string;
};

export interface SeedDeployment {
  id: string;
  /** Default: the id. */
  name?: string;
  /** The route's id. Default: `rt_<id>`. */
  routeId?: string;
  domain: string;
  targetPort: number;
  /** Default: the column's default (http). */
  protocol?: Protocol;
  /** Default: least-conn, the algorithm the fallback proxy serves. */
  loadBalancerAlgo?: LbAlgo;
  replicas: SeedReplica[];
}

/** Inserts a deployment, its one primary route (no TLS) and its replica rows. */
export async function seedDeployment(db: Db, d: SeedDeployment): Promise<void> {
  await db.insert(deployments).values({ id: d.id, name: d.name ?? d.id });
  await db.insert(deploymentRouting).values({
    id: d.routeId ?? `rt_${d.id}`,
    deploymentId: d.id,
    domain: d.domain,
    targetPort: d.targetPort,
    ...(d.protocol ? { protocol: d.protocol } : {}),
    sslEnabled: false,
    isPrimary: true,
    loadBalancerAlgo: d.loadBalancerAlgo ?? "least-conn",
  });
  if (d.replicas.length > 0) {
    await db
      .insert(deploymentLocations)
      .values(
        d.replicas.map((r) => ({ address: "127.0.0.1", healthStatus: "healthy" as const, ...r, deploymentId: d.id })),
      );
  }
}
