import { and, eq, inArray } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { ProxySnapshot } from "../../proxy/table.js";
import { STABLE_TRACK } from "../../render/split-config.js";
import type { Db } from "../client.js";
import { isRendered, isServing, replicaColumns, routeColumns } from "./snapshot.js";

/**
 * Everything the fallback proxy routes on, read in one consistent (repeatable read) view: the verified
 * `least-conn` routes only (the only ones the renderer sends through the proxy) and the replicas of their
 * deployments. A round-robin or ip-hash deployment is not in the table, so the proxy cannot be used to reach it
 * around the middlewares of its own Traefik router (issue 10 #1); nor can a pending route's domain (ownership not
 * proven) reach anything through it.
 *
 * Only replicas that may get new requests are in it: not draining (see `isServing`; the proxy reloads on the
 * change feed's NOTIFY, so a drain stops new picks within one debounced reload while requests already sent finish
 * on the old pool), and on the `stable` track (tracks are pools for Traefik's weighted splits, and a least-conn
 * deployment cannot have a split: without one only `stable` replicas get traffic, as in src/render/traffic.ts).
 */
export async function loadProxySnapshot(db: Db): Promise<ProxySnapshot> {
  return db.transaction(
    async (tx) => {
      const routes = await tx
        .select({
          ...routeColumns,
          isPrimary: deploymentRouting.isPrimary,
          healthIntervalSeconds: deployments.healthIntervalSeconds,
        })
        .from(deploymentRouting)
        .innerJoin(deployments, eq(deployments.id, deploymentRouting.deploymentId))
        .where(and(eq(deploymentRouting.loadBalancerAlgo, "least-conn"), isRendered));
      const viaProxy = [...new Set(routes.map((r) => r.deploymentId))];
      const replicas =
        viaProxy.length === 0
          ? []
          : await tx
              .select({
                ...replicaColumns,
                cpuUsage: deploymentLocations.cpuUsage,
                cpuUpdatedAt: deploymentLocations.cpuUpdatedAt,
              })
              .from(deploymentLocations)
              .where(
                and(
                  inArray(
                    deploymentLocations.deploymentId,
                    tx
                      .selectDistinct({ id: deploymentRouting.deploymentId })
                      .from(deploymentRouting)
                      .where(and(eq(deploymentRouting.loadBalancerAlgo, "least-conn"), isRendered)),
                  ),
                  isServing,
                  eq(deploymentLocations.track, STABLE_TRACK),
                ),
              );
      return { routes, replicas };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
