import { createRoute, z } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { listServingReplicas } from "../../db/repo/locations.js";
import { getTraffic, refuseTrafficConflict, setTrafficPart } from "../../db/repo/traffic.js";
import { replicaAllowList } from "../../render/address.js";
import { geoStatus } from "../../render/geo.js";
import { StoredGeo } from "../../render/geo-config.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem } from "../problem.js";
import { DeploymentParams } from "../schemas.js";

// Geographic routing of one deployment: `PUT/GET/DELETE /{id}/geo` (stored in deployment_traffic.geo, rendered by
// src/render/geo.ts).

const EXAMPLE = {
  header: "CF-IPCountry",
  regions: { eu: ["DE", "FR", "NL"], us: ["US", "CA"] },
  failover: { eu: ["us"], us: ["eu"] },
  default: "eu",
};

const GeoBody = StoredGeo.meta({
  description:
    "Country header, regions (region → ISO 3166-1 alpha-2 codes), failover order per region and the default region.",
  example: EXAMPLE,
});

const RegionStatus = z.object({
  healthy_replicas: z.number().int().meta({ description: "Healthy, running `stable` replicas with this region." }),
  served_by: z.string().nullable().meta({
    description: "The region whose replicas serve this region's requests now (after failover); null: none (503).",
  }),
});

const GeoView = z
  .object({
    header: z.string(),
    regions: z.record(z.string(), z.array(z.string())),
    failover: z.record(z.string(), z.array(z.string())).optional(),
    default: z.string(),
    status: z.record(z.string(), RegionStatus).meta({ description: "Per declared region, right now." }),
  })
  .meta({
    example: {
      ...EXAMPLE,
      status: { eu: { healthy_replicas: 0, served_by: "us" }, us: { healthy_replicas: 2, served_by: "us" } },
    },
  });

const CONFLICTS =
  "409 TRAFFIC_CONFLICT when the deployment has a traffic split (DELETE …/split first; geo and split are exclusive) " +
  "or a route uses `least-conn` (the fallback proxy balances those, not Traefik).";

const get = createRoute({
  method: "get",
  path: "/{id}/geo",
  summary: "Geographic routing, with each region's healthy replicas and serving region",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(GeoView, "Settings and status"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/geo",
  summary: "Route by the client's country to regional replicas, with failover",
  description:
    "One Traefik router per region matches the country header (`HeaderRegexp`, above the route's own router); " +
    "each goes to that region's healthy `stable` replicas, or, while it has none, to the first region of its " +
    "`failover` list that has some. Requests without the header or with an unlisted country go to `default`. " +
    CONFLICTS,
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(GeoBody) },
  responses: { 200: json(GeoView, "Settings after the change"), ...problems(...BODY_PROBLEMS, 404, 409) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}/geo",
  summary: "Stop geographic routing (back to one pool of `stable` replicas)",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 204: { description: "Removed" }, ...problems(400, 401, 404) },
});

const notSet = (id: string) =>
  new HttpProblem({
    status: 404,
    code: "GEO_NOT_FOUND",
    title: "Geo routing not set",
    detail: `Deployment ${id} has no geographic routing (PUT /api/v1/deployments/${id}/geo sets it).`,
  });

export function geoApi({ handle: { db }, config }: Deps) {
  const allowed = replicaAllowList(config.REPLICA_ALLOWED_CIDRS);
  const view = async (id: string, geo: StoredGeo) =>
    ({ ...geo, status: geoStatus(geo, await listServingReplicas(db, id, allowed)) }) as z.infer<typeof GeoView>;
  return contracts()
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      // Never trust a stored row: one that no longer validates is shown as not set (the renderer skips it too).
      const stored = StoredGeo.safeParse((await getTraffic(db, id)).geo);
      if (!stored.success) {
        throw notSet(id);
      }
      return c.json(await view(id, stored.data), 200);
    })
    .openapi(put, async (c) => {
      const { id } = c.req.valid("param");
      const geo = c.req.valid("json");
      await getDeployment(db, id);
      await refuseTrafficConflict(db, id, "geo");
      await setTrafficPart(db, id, "geo", geo);
      return c.json(await view(id, geo), 200);
    })
    .openapi(remove, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      if ((await getTraffic(db, id)).geo === null) {
        throw notSet(id);
      }
      await setTrafficPart(db, id, "geo", null);
      return c.body(null, 204);
    });
}
