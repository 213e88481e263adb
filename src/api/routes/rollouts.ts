import { createRoute, z } from "@hono/zod-openapi";
import type { RolloutRow } from "../../../schema/tables.js";
import type { Db } from "../../db/client.js";
import {
  abortWhenOf,
  currentWeight,
  getRollout,
  operateRollout,
  startRollout,
  trackReplicas,
} from "../../db/repo/rollouts.js";
import { AbortWhen, FAILURE_WINDOW_MS, measureTrack, ROLLOUT_STATES, RolloutBody } from "../../rollout/plan.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import { DeploymentParams } from "../schemas.js";

// Progressive rollouts: POST starts one (its first step at once), the worker (src/rollout/worker.ts) advances it on
// its schedule and aborts it on bad health; GET shows where it is; pause, resume and DELETE (abort) are the
// operator's levers.

const HistoryView = z.object({
  at: z.string().meta({ example: "2026-06-01T10:05:00.000Z" }),
  action: z.enum(["started", "step", "paused", "resumed", "aborted", "promoted"]),
  step_index: z.number().int(),
  weight: z.number().int().meta({ description: "The track's weight (percent) after this entry." }),
  reason: z.string().meta({ example: "step 2 of 4" }),
  actor: z.string().optional().meta({ description: "The token that did it (operator actions only)." }),
});

const HealthView = z
  .object({
    replicas: z.number().int().meta({ description: "Running, not draining replicas of the track." }),
    healthy: z.number().int(),
    unhealthy: z.number().int(),
    unknown: z.number().int().meta({ description: "Not probed yet: counted on neither side of the ratio." }),
    healthy_ratio: z.number().nullable().meta({ description: "healthy / (healthy + unhealthy); null until judged." }),
    failures_last_minute: z.number().int().meta({
      description: "Failed probes and failure reports of the track's replicas in the last 60 s (a lower bound).",
    }),
    measured_at: z.string(),
  })
  .meta({ description: "The figures the rollout is judged on, measured now." });

export const RolloutView = z
  .object({
    deployment_id: z.string(),
    track: z.string(),
    state: z.enum(ROLLOUT_STATES),
    steps: z.array(z.number().int()),
    step_index: z.number().int().meta({ description: "Index into steps of the current step." }),
    weight: z.number().int().meta({ description: "The track's weight now (0 once aborted, 100 once promoted)." }),
    interval_seconds: z.number().int(),
    next_step_at: z.string().nullable().meta({ description: "When the next step is due (null unless running)." }),
    abort_when: AbortWhen,
    health: HealthView,
    history: z.array(HistoryView),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({
    example: {
      deployment_id: "dep_abc123",
      track: "canary",
      state: "running",
      steps: [5, 25, 50, 100],
      step_index: 1,
      weight: 25,
      interval_seconds: 300,
      next_step_at: "2026-06-01T10:10:00.000Z",
      abort_when: { healthy_ratio_below: 0.8, failures_per_minute_above: 5 },
      health: {
        replicas: 2,
        healthy: 2,
        unhealthy: 0,
        unknown: 0,
        healthy_ratio: 1,
        failures_last_minute: 0,
        measured_at: "2026-06-01T10:06:12.000Z",
      },
      history: [
        {
          at: "2026-06-01T10:00:00.000Z",
          action: "started",
          step_index: 0,
          weight: 5,
          reason: "rollout of canary started",
          actor: "deploy-bot",
        },
        { at: "2026-06-01T10:05:00.000Z", action: "step", step_index: 1, weight: 25, reason: "step 2 of 4" },
      ],
      created_at: "2026-06-01T10:00:00.000Z",
      updated_at: "2026-06-01T10:05:00.000Z",
    },
  });

/** The view of a rollout, with its track's health measured at `now`. */
async function rolloutView(db: Db, row: RolloutRow, now: Date): Promise<z.infer<typeof RolloutView>> {
  const replicas = await trackReplicas(db, row.deploymentId, row.track, new Date(now.getTime() - FAILURE_WINDOW_MS));
  const h = measureTrack(replicas, now.getTime());
  return {
    deployment_id: row.deploymentId,
    track: row.track,
    state: row.state as z.infer<typeof RolloutView>["state"],
    steps: row.steps,
    step_index: row.stepIndex,
    weight: currentWeight(row),
    interval_seconds: row.intervalSeconds,
    next_step_at: row.nextStepAt?.toISOString() ?? null,
    abort_when: abortWhenOf(row),
    health: {
      replicas: h.replicas,
      healthy: h.healthy,
      unhealthy: h.unhealthy,
      unknown: h.unknown,
      healthy_ratio: h.healthyRatio,
      failures_last_minute: h.failuresLastMinute,
      measured_at: now.toISOString(),
    },
    history: row.history as z.infer<typeof HistoryView>[],
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

const path = "/{id}/rollout";

const start = createRoute({
  method: "post",
  path,
  summary: "Start a progressive rollout of a track (its first step at once)",
  description:
    "Moves `steps[i]` percent of the traffic to `track` (the rest stays on `stable`), one step every `interval_seconds`, and aborts to 0 % on its own when the track's healthy ratio falls below `abort_when.healthy_ratio_below` or its replicas record more than `abort_when.failures_per_minute_above` failures in a minute. At 100 % it promotes: the track's replicas become `stable`, the former stable ones drain for 30 s, the split is removed. 409 `ROLLOUT_ACTIVE` while another rollout is running or paused, `ROLLOUT_UNSUPPORTED` with geo routing or a least-conn route, `ROLLOUT_TRACK_EMPTY` when the track has no running replica, `ROLLOUT_SPLIT_CONFLICT` when the split gives traffic to a third track.",
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(RolloutBody) },
  responses: { 201: json(RolloutView, "Started"), ...problems(...BODY_PROBLEMS, 404, 409) },
});

const get = createRoute({
  method: "get",
  path,
  summary: "A deployment's rollout: state, current step and weight, next step time, health figures, history",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(RolloutView, "The rollout (the latest, once finished)"), ...problems(400, 401, 404) },
});

const pause = createRoute({
  method: "post",
  path: `${path}/pause`,
  summary: "Pause a running rollout (the weight holds; health can still abort it)",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 200: json(RolloutView, "Paused"), ...problems(400, 401, 404, 409) },
});

const resume = createRoute({
  method: "post",
  path: `${path}/resume`,
  summary: "Resume a paused rollout (the next step a full interval from now)",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 200: json(RolloutView, "Running again"), ...problems(400, 401, 404, 409) },
});

const abort = createRoute({
  method: "delete",
  path,
  summary: "Abort a running or paused rollout: the track's weight goes to 0 % at once",
  security: WRITE,
  request: { params: DeploymentParams },
  responses: { 200: json(RolloutView, "Aborted"), ...problems(400, 401, 404, 409) },
});

/** `/{id}/rollout` (POST, GET, DELETE) and `/{id}/rollout/pause|resume`. */
export function rolloutApi({ handle: { db }, clock }: Deps) {
  return contracts()
    .openapi(start, async (c) => {
      const { id } = c.req.valid("param");
      const now = clock.now();
      const row = await startRollout(db, id, { ...c.req.valid("json"), now, actor: c.get("actor") });
      return c.json(await rolloutView(db, row, now), 201);
    })
    .openapi(get, async (c) => {
      const row = await getRollout(db, c.req.valid("param").id);
      return c.json(await rolloutView(db, row, clock.now()), 200);
    })
    .openapi(pause, async (c) => {
      const now = clock.now();
      const row = await operateRollout(db, c.req.valid("param").id, "pause", { now, actor: c.get("actor") });
      c.set("configUnchanged", true); // the weight holds
      return c.json(await rolloutView(db, row, now), 200);
    })
    .openapi(resume, async (c) => {
      const now = clock.now();
      const row = await operateRollout(db, c.req.valid("param").id, "resume", { now, actor: c.get("actor") });
      c.set("configUnchanged", true);
      return c.json(await rolloutView(db, row, now), 200);
    })
    .openapi(abort, async (c) => {
      const now = clock.now();
      const row = await operateRollout(db, c.req.valid("param").id, "abort", { now, actor: c.get("actor") });
      return c.json(await rolloutView(db, row, now), 200);
    });
}
