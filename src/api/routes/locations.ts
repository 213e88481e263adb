import { createRoute } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { deleteLocation, listLocations, upsertLocation } from "../../db/repo/locations.js";
import { replicaAllowList } from "../../render/address.js";
import { checkAddress } from "../../render/validate.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { DeploymentParams, Items, LocationParams, LocationView, PutLocationBody } from "../schemas.js";
import { invalidField } from "../validate.js";
import { camelize, locationView } from "../views.js";

const list = createRoute({
  method: "get",
  path: "/{id}/locations",
  summary: "Replicas with health",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(Items(LocationView), "Replicas"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/locations/{location_id}",
  summary: "Register or update a replica",
  security: WRITE,
  request: { params: LocationParams, body: jsonBody(PutLocationBody) },
  responses: {
    200: json(LocationView, "Updated"),
    201: json(LocationView, "Created"),
    ...problems(...BODY_PROBLEMS, 404, 409),
  },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}/locations/{location_id}",
  summary: "Remove a replica",
  security: WRITE,
  request: { params: LocationParams },
  responses: { 204: { description: "Removed" }, ...problems(400, 401, 404) },
});

/** Replicas of a deployment: the orchestrator's write path and the operator's view of their health. */
export function locationsApi({ handle: { db }, checker, config }: Deps) {
  const allowed = replicaAllowList(config.REPLICA_ALLOWED_CIDRS);
  return contracts()
    .openapi(list, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      return c.json({ items: (await listLocations(db, id)).map(locationView) }, 200);
    })
    .openapi(put, async (c) => {
      const { id, location_id } = c.req.valid("param");
      const b = c.req.valid("json");
      // The schema checks the form; whether the address may be dialled depends on the operator's allow-list.
      const refused = checkAddress(b.address, allowed);
      if (refused) {
        throw invalidField("body.address", refused);
      }
      const { row, created, routingChanged } = await upsertLocation(db, id, location_id, camelize(b));
      if (!routingChanged) {
        c.set("configUnchanged", true); // a heartbeat (CPU figure, node name): nothing to re-render
      }
      // A new or moved replica is probed at once rather than at the next tick (its health is `unknown`).
      // After the commit: the probe claims the row on its own connection and must see it.
      if (checker && row.status === "running" && row.healthStatus === "unknown" && row.nextProbeAt === null) {
        const probe = () => checker.probeNow(row.id);
        const afterCommit = c.get("afterCommit");
        afterCommit ? afterCommit.push(probe) : probe();
      }
      return created ? c.json(locationView(row), 201) : c.json(locationView(row), 200);
    })
    .openapi(remove, async (c) => {
      const { id, location_id } = c.req.valid("param");
      await deleteLocation(db, id, location_id);
      return c.body(null, 204);
    });
}
