import { Hono } from "hono";
import { getDeployment } from "../../db/repo/deployments.js";
import { deleteLocation, listLocations, upsertLocation } from "../../db/repo/locations.js";
import { replicaAllowList } from "../../render/address.js";
import { checkAddress } from "../../render/validate.js";
import type { AppEnv, Deps } from "../app.js";
import { DeploymentId, LocationId, PutLocationBody } from "../schemas.js";
import { invalidField, parseBody, parseParam } from "../validate.js";
import { locationView } from "../views.js";

/** Replicas of a deployment: the orchestrator's write path and the operator's view of their health. */
export function locationsApi({ handle, cache, checker, config }: Deps) {
  const { db } = handle;
  const allowed = replicaAllowList(config.REPLICA_ALLOWED_CIDRS);
  return new Hono<AppEnv>()
    .get("/:id/locations", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      await getDeployment(db, id);
      return c.json({ items: (await listLocations(db, id)).map(locationView) });
    })
    .put("/:id/locations/:location_id", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const locationId = parseParam(c, "location_id", LocationId);
      const b = await parseBody(c, PutLocationBody);
      // The schema checks the form; whether the address may be dialled depends on the operator's allow-list.
      const refused = checkAddress(b.address, allowed);
      if (refused) {
        throw invalidField("body.address", refused);
      }
      const { row, created, routingChanged } = await upsertLocation(db, id, locationId, {
        nodeId: b.node_id,
        nodeHostname: b.node_hostname,
        address: b.address,
        port: b.port,
        containerId: b.container_id,
        status: b.status,
        cpuUsage: b.cpu_usage,
      });
      if (routingChanged) {
        cache.invalidate();
      }
      // A new or moved replica is probed at once rather than at the next tick (its health is `unknown`).
      if (row.status === "running" && row.healthStatus === "unknown" && row.nextProbeAt === null) {
        checker?.probeNow(row.id);
      }
      return c.json(locationView(row), created ? 201 : 200);
    })
    .delete("/:id/locations/:location_id", async (c) => {
      await deleteLocation(db, parseParam(c, "id", DeploymentId), parseParam(c, "location_id", LocationId));
      cache.invalidate();
      return c.body(null, 204);
    });
}
