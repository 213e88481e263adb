import { eq } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { ProxySnapshot } from "../../proxy/table.js";
import type { Db } from "../client.js";
import { replicaColumns, routeColumns } from "./snapshot.js";

/** Everything the fallback proxy routes on, read in one consistent (repeatable read) view. */
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
        .innerJoin(deployments, eq(deployments.id, deploymentRouting.deploymentId));
      const replicas = await tx
        .select({
          ...replicaColumns,
          cpuUsage: deploymentLocations.cpuUsage,
          cpuUpdatedAt: deploymentLocations.cpuUpdatedAt,
        })
        .from(deploymentLocations);
      return { routes, replicas };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
