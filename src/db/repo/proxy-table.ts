import { eq } from "drizzle-orm";
import { deploymentLocations, deploymentRouting, deployments } from "../../../schema/tables.js";
import type { ProxySnapshot } from "../../proxy/table.js";
import type { Db } from "../client.js";

/** Everything the fallback proxy routes on, read in one consistent (repeatable read) view. */
export async function loadProxySnapshot(db: Db): Promise<ProxySnapshot> {
  return db.transaction(
    async (tx) => {
      const routes = await tx
        .select({
          id: deploymentRouting.id,
          deploymentId: deploymentRouting.deploymentId,
          domain: deploymentRouting.domain,
          pathPrefix: deploymentRouting.pathPrefix,
          targetPort: deploymentRouting.targetPort,
          protocol: deploymentRouting.protocol,
          isPrimary: deploymentRouting.isPrimary,
          healthIntervalSeconds: deployments.healthIntervalSeconds,
        })
        .from(deploymentRouting)
        .innerJoin(deployments, eq(deployments.id, deploymentRouting.deploymentId));
      const replicas = await tx
        .select({
          id: deploymentLocations.id,
          deploymentId: deploymentLocations.deploymentId,
          address: deploymentLocations.address,
          port: deploymentLocations.port,
          status: deploymentLocations.status,
          healthStatus: deploymentLocations.healthStatus,
          cpuUsage: deploymentLocations.cpuUsage,
          cpuUpdatedAt: deploymentLocations.cpuUpdatedAt,
        })
        .from(deploymentLocations);
      return { routes, replicas };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
