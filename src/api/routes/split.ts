import { createRoute, z } from "@hono/zod-openapi";
import { getDeployment } from "../../db/repo/deployments.js";
import { listServingReplicas } from "../../db/repo/locations.js";
import { refuseDuringRollout } from "../../db/repo/rollouts.js";
import { getTraffic, refuseTrafficConflict, setTrafficPart } from "../../db/repo/traffic.js";
import { replicaAllowList } from "../../render/address.js";
import { effectiveWeights, MIRROR_MAX_BODY_BYTES } from "../../render/split.js";
import {
  MAX_SPLIT_RULES,
  SplitRule,
  SplitWeights,
  StoredMirror,
  StoredSplit,
  StoredSticky,
} from "../../render/split-config.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem } from "../problem.js";
import { DeploymentParams } from "../schemas.js";

// Canary / A-B traffic split of one deployment: `PUT/GET/DELETE /{id}/split` (stored in deployment_traffic.split,
// rendered by src/render/split.ts).

const EXAMPLE = {
  weights: { stable: 90, canary: 10 },
  sticky: true,
  rules: [
    { match: { header: "X-Variant", value: "b" }, track: "canary" },
    { match: { cookie: "ab", value: "b" }, track: "canary" },
    { match: { query: "variant", value: "b" }, track: "canary" },
  ],
  mirror: { track: "canary", percent: 10 },
};

const SplitBody = z
  .strictObject({
    weights: SplitWeights.meta({
      description:
        "Track → relative weight (integers 0–1000, at least one above 0). A track without a healthy replica " +
        "drops out and its share goes to the others.",
      example: { stable: 90, canary: 10 },
    }),
    sticky: z
      .union([z.boolean(), StoredSticky])
      .optional()
      .meta({
        description:
          "Pin a client to the track it got first with Traefik's sticky cookie. `true`: defaults (name derived " +
          "from the service name, httpOnly, SameSite=Lax, Secure on TLS routes); or set `cookie_name`, `secure`, " +
          "`http_only`, `same_site`.",
      }),
    rules: z
      .array(SplitRule)
      .max(MAX_SPLIT_RULES, `at most ${MAX_SPLIT_RULES} rules`)
      .optional()
      .meta({
        description:
          "A/B by request, first match wins: each rule matches one header, cookie or query parameter value " +
          "exactly and sends the request to its track (a router above the route's own).",
      }),
    mirror: StoredMirror.optional().meta({
      description:
        "Shadow traffic: a copy of `percent` % of requests also goes to `track`; its responses are discarded. " +
        `Requests with a body over ${MIRROR_MAX_BODY_BYTES} bytes are not mirrored.`,
    }),
  })
  .meta({ example: EXAMPLE });
type SplitBody = z.infer<typeof SplitBody>;

const TrackShareView = z.object({
  track: z.string(),
  weight: z.number().int(),
  percent: z.number().meta({ description: "Share of the weighted (non-A/B) requests now, rounded to 0.1." }),
});

const SplitView = z
  .object({
    weights: z.record(z.string(), z.number().int()),
    sticky: StoredSticky.optional(),
    rules: z.array(SplitRule).optional(),
    mirror: StoredMirror.optional(),
    effective: z.array(TrackShareView).meta({
      description: "The weighted split Traefik applies now: tracks with weight > 0 and a healthy replica (empty: 503).",
    }),
    healthy_replicas: z
      .record(z.string(), z.number().int())
      .meta({ description: "Healthy, running, not draining replicas per track named in the split." }),
  })
  .meta({
    example: {
      weights: { stable: 90, canary: 10 },
      sticky: {},
      effective: [
        { track: "canary", weight: 10, percent: 10 },
        { track: "stable", weight: 90, percent: 90 },
      ],
      healthy_replicas: { canary: 1, stable: 3 },
    },
  });

const CONFLICTS =
  "409 TRAFFIC_CONFLICT when the deployment has geographic routing (DELETE …/geo first; geo and a split are " +
  "exclusive) or a route uses `least-conn` (the fallback proxy balances those and knows no tracks).";

const get = createRoute({
  method: "get",
  path: "/{id}/split",
  summary: "Traffic split, with the weights Traefik applies given current health",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(SplitView, "Settings and effective weights"), ...problems(400, 401, 404) },
});

const put = createRoute({
  method: "put",
  path: "/{id}/split",
  summary: "Split traffic between replica tracks (canary, A/B by header, cookie or query, mirroring)",
  description:
    "Renders a Traefik `weighted` service over one `loadBalancer` per track (`<name>--track-<track>`), optionally " +
    "with a sticky cookie; one router per A/B rule (`<name>--ab-<i>`, the route's rule AND the match, ranked " +
    "above the route's own router, earlier rules first); and with `mirror`, a `mirroring` service in front. " +
    "Replicas choose their track with `PUT …/locations/{location_id}` `track`. " +
    CONFLICTS,
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(SplitBody) },
  responses: { 200: json(SplitView, "Settings after the change"), ...problems(...BODY_PROBLEMS, 404, 409) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}/split",
  summary: "Remove the split (back to one pool of `stable` replicas)",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 204: { description: "Removed" }, ...problems(400, 401, 404, 409) },
});

const notSet = (id: string) =>
  new HttpProblem({
    status: 404,
    code: "SPLIT_NOT_FOUND",
    title: "Traffic split not set",
    detail: `Deployment ${id} has no traffic split (PUT /api/v1/deployments/${id}/split sets it).`,
  });

/** The body as stored: `sticky: true` → `{}` (defaults), `false` → none; key order fixed. */
export function toStoredSplit(body: SplitBody): StoredSplit {
  const sticky = body.sticky === true ? {} : body.sticky === false ? undefined : body.sticky;
  return {
    weights: body.weights,
    ...(sticky ? { sticky } : {}),
    ...(body.rules && body.rules.length > 0 ? { rules: body.rules } : {}),
    ...(body.mirror ? { mirror: body.mirror } : {}),
  };
}

/** Every track the split names (weights, rules, mirror), sorted. */
function tracksOf(split: StoredSplit): string[] {
  const all = new Set(Object.keys(split.weights));
  for (const r of split.rules ?? []) {
    all.add(r.track);
  }
  if (split.mirror) {
    all.add(split.mirror.track);
  }
  return [...all].sort();
}

export function splitApi({ handle: { db }, config }: Deps) {
  const allowed = replicaAllowList(config.REPLICA_ALLOWED_CIDRS);
  const view = async (id: string, split: StoredSplit) => {
    const up = await listServingReplicas(db, id, allowed);
    const healthy: Record<string, number> = {};
    for (const t of tracksOf(split)) {
      healthy[t] = up.filter((r) => (r.track ?? "stable") === t).length;
    }
    return { ...split, effective: effectiveWeights(split, up), healthy_replicas: healthy };
  };
  return contracts()
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      // Never trust a stored row: one that no longer validates is shown as not set (the renderer skips its routes).
      const stored = StoredSplit.safeParse((await getTraffic(db, id)).split);
      if (!stored.success) {
        throw notSet(id);
      }
      return c.json(await view(id, stored.data), 200);
    })
    .openapi(put, async (c) => {
      const { id } = c.req.valid("param");
      const split = toStoredSplit(c.req.valid("json"));
      await getDeployment(db, id);
      await refuseTrafficConflict(db, id, "split");
      await refuseDuringRollout(db, id, "change the split");
      await setTrafficPart(db, id, "split", split);
      return c.json(await view(id, split), 200);
    })
    .openapi(remove, async (c) => {
      const { id } = c.req.valid("param");
      await getDeployment(db, id);
      if ((await getTraffic(db, id)).split === null) {
        throw notSet(id);
      }
      await refuseDuringRollout(db, id, "remove the split");
      await setTrafficPart(db, id, "split", null);
      return c.body(null, 204);
    });
}
