import { createRoute } from "@hono/zod-openapi";
import type { LocationRow } from "../../../schema/tables.js";
import { getDeployment } from "../../db/repo/deployments.js";
import {
  cancelDrain,
  deleteLocation,
  drainLocation,
  isDrained,
  isDraining,
  listLocations,
  upsertLocation,
} from "../../db/repo/locations.js";
import { replicaAllowList } from "../../render/address.js";
import { checkAddress } from "../../render/validate.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { DeploymentParams, DrainBody, Items, LocationParams, LocationView, PutLocationBody } from "../schemas.js";
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

const drain = createRoute({
  method: "post",
  path: "/{id}/locations/{location_id}/drain",
  summary: "Drain a replica before stopping it",
  description:
    "From this request on the replica gets no new requests: it leaves the rendered servers and the fallback " +
    "proxy's choice at once, while requests already sent to it finish. After `seconds` it counts as removed " +
    "(`drained: true`, event `replica.drained`): the orchestrator may stop it. Draining again sets a new end from " +
    "now. Refused with 409 LAST_HEALTHY_REPLICA for the last healthy, running, non-draining replica of its track " +
    "unless `force: true`. A heartbeat (PUT with the same address) keeps the drain; a new address or port ends it.",
  security: WRITE,
  request: { params: LocationParams, body: jsonBody(DrainBody) },
  responses: { 200: json(LocationView, "Draining"), ...problems(...BODY_PROBLEMS, 404, 409) },
});

const undrain = createRoute({
  method: "delete",
  path: "/{id}/locations/{location_id}/drain",
  summary: "Cancel a replica's drain",
  description: "The replica is routed again (once healthy). A replica that is not draining is answered as it is.",
  security: WRITE,
  request: { params: LocationParams },
  responses: { 200: json(LocationView, "Not draining"), ...problems(400, 401, 404) },
});

/** A location with its drain state as of `now`. */
export function drainAwareView(row: LocationRow, now: Date): LocationView {
  const drained = isDrained(row, now);
  return { ...locationView(row), draining: isDraining(row) && !drained, drained };
}

/** Replicas of a deployment: the orchestrator's write path and the operator's view of their health. */
export function locationsApi({ handle: { db }, checker, config, clock }: Deps) {
  const allowed = replicaAllowList(config.REPLICA_ALLOWED_CIDRS);
  return contracts()
    .openapi(list, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      const now = clock.now();
      return c.json({ items: (await listLocations(db, id)).map((l) => drainAwareView(l, now)) }, 200);
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
      const view = drainAwareView(row, clock.now());
      return created ? c.json(view, 201) : c.json(view, 200);
    })
    .openapi(drain, async (c) => {
      const { id, location_id } = c.req.valid("param");
      const { seconds, force } = c.req.valid("json");
      const now = clock.now();
      const { row, wasDraining } = await drainLocation(db, id, location_id, { seconds, force, now });
      if (wasDraining) {
        c.set("configUnchanged", true); // already out of the servers: only the end moved
      }
      return c.json(drainAwareView(row, now), 200);
    })
    .openapi(undrain, async (c) => {
      const { id, location_id } = c.req.valid("param");
      const { row, wasDraining } = await cancelDrain(db, id, location_id);
      if (!wasDraining) {
        c.set("configUnchanged", true);
      }
      return c.json(drainAwareView(row, clock.now()), 200);
    })
    .openapi(remove, async (c) => {
      const { id, location_id } = c.req.valid("param");
      await deleteLocation(db, id, location_id);
      return c.body(null, 204);
    });
}
