import { and, eq, inArray } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { ProxySnapshot } from "../../proxy/table.js";
import type { Db } from "../client.js";
import { isRendered, replicaColumns, routeColumns } from "./snapshot.js";

/**
 * Everything the fallback proxy routes on, read in one consistent (repeatable read) view: the verified
 * `least-conn` routes only (the only ones the renderer sends through the proxy) and the replicas of their
 * deployments. A round-robin or ip-hash deployment is not in the table, so the proxy cannot be used to reach it
 * around the middlewares of its own Traefik router (issue 10 #1); nor can a pending route's domain (ownership not
 * proven) reach anything through it.
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
                inArray(
                  deploymentLocations.deploymentId,
                  tx
                    .selectDistinct({ id: deploymentRouting.deploymentId })
                    .from(deploymentRouting)
                    .where(and(eq(deploymentRouting.loadBalancerAlgo, "least-conn"), isRendered)),
                ),
              );
      return { routes, replicas };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
