import { createRoute } from "@hono/zod-openapi";
import type { DeploymentRow } from "../../../schema/tables.js";
import type { Config } from "../../config/env.js";
import { getDeployment } from "../../db/repo/deployments.js";
import { listHealthEvents } from "../../db/repo/health.js";
import { getLocation } from "../../db/repo/locations.js";
import { reportReplicaFailure } from "../../health/report.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ, WRITE } from "../contract.js";
import type { Deps } from "../deps.js";
import {
  DeploymentParams,
  EventsQuery,
  FailureReportView,
  HealthCheckBody,
  HealthCheckView,
  HealthEventView,
  Items,
  LocationParams,
  ReportFailureBody,
} from "../schemas.js";
import { putHealthCheck } from "../write-steps.js";

function healthCheckView(d: DeploymentRow, config: Config): HealthCheckView {
  const tlsDeclared = d.backendTlsServerName !== null || d.backendTlsCaPem !== null || d.backendTlsInsecureSkipVerify;
  const overrides = [
    d.healthPath === null ? undefined : "path",
    d.healthIntervalSeconds === null ? undefined : "interval_seconds",
    d.healthTimeoutSeconds === null ? undefined : "timeout_seconds",
    d.healthExpectedStatus === null ? undefined : "expected_status",
    d.healthMode === null ? undefined : "mode",
    tlsDeclared ? "tls" : undefined,
  ].filter((x): x is string => x !== undefined);
  return {
    path: d.healthPath ?? config.HEALTH_PATH,
    interval_seconds: d.healthIntervalSeconds ?? config.HEALTH_INTERVAL_SECONDS,
    timeout_seconds: d.healthTimeoutSeconds ?? config.HEALTH_TIMEOUT_SECONDS,
    expected_status: d.healthExpectedStatus ?? config.HEALTH_EXPECTED_STATUS,
    mode: d.healthMode,
    tls: {
      server_name: d.backendTlsServerName,
      ca_pem: d.backendTlsCaPem,
      insecure_skip_verify: d.backendTlsInsecureSkipVerify,
    },
    overrides,
  };
}

const getSettings = createRoute({
  method: "get",
  path: "/{id}/health-check",
  summary: "Effective health-check settings",
  security: READ,
  request: { params: DeploymentParams },
  responses: { 200: json(HealthCheckView, "Settings"), ...problems(400, 401, 404) },
});

const putSettings = createRoute({
  method: "put",
  path: "/{id}/health-check",
  summary: "Override health-check settings (null resets to the default)",
  security: WRITE,
  request: { params: DeploymentParams, body: jsonBody(HealthCheckBody) },
  responses: { 200: json(HealthCheckView, "Settings after the change"), ...problems(...BODY_PROBLEMS, 404) },
});

const postFailure = createRoute({
  method: "post",
  path: "/{id}/locations/{location_id}/failures",
  summary: "Report a request failure: the replica is unhealthy at once",
  security: WRITE,
  request: { params: LocationParams, body: jsonBody(ReportFailureBody) },
  responses: {
    202: json(FailureReportView, "Recorded (or collapsed into a report less than 1 s old)"),
    ...problems(...BODY_PROBLEMS, 404),
  },
});

const listEvents = createRoute({
  method: "get",
  path: "/{id}/locations/{location_id}/events",
  summary: "Health transitions of a replica, newest first",
  security: READ,
  request: { params: LocationParams, query: EventsQuery },
  responses: { 200: json(Items(HealthEventView), "Events"), ...problems(400, 401, 404) },
});

/** Health settings per deployment, passive failure reports and the transition history of a replica. */
export function healthApi({ handle: { db }, config, clock, logger }: Deps) {
  return contracts()
    .openapi(getSettings, async (c) =>
      c.json(healthCheckView(await getDeployment(db, c.req.valid("param").id), config), 200),
    )
    .openapi(putSettings, async (c) => {
      const { id } = c.req.valid("param");
      const b = c.req.valid("json");
      const row = await putHealthCheck(db, id, b);
      return c.json(healthCheckView(row, config), 200);
    })
    .openapi(postFailure, async (c) => {
      const { id, location_id } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const { collapsed, transition } = await reportReplicaFailure(
        { db, logger, rise: config.HEALTH_RISE },
        {
          deploymentId: id,
          locationId: location_id,
          at: clock.now(),
          error: `reported: ${reason ?? "request failed"}`,
        },
      );
      if (!transition) {
        c.set("configUnchanged", true); // still unhealthy (or collapsed): the rendered config stands
      }
      const row = await getLocation(db, id, location_id);
      return c.json(
        { location_id, health_status: row.healthStatus, collapsed, transition: transition !== undefined },
        202,
      );
    })
    .openapi(listEvents, async (c) => {
      const { id, location_id } = c.req.valid("param");
      const { limit } = c.req.valid("query");
      await getLocation(db, id, location_id); // 404 for an unknown replica
      const events = await listHealthEvents(db, id, location_id, limit);
      const items = events.map((e) => ({
        location_id: e.locationId,
        from: e.fromStatus,
        to: e.toStatus,
        at: e.at.toISOString(),
        reason: e.reason,
        source: e.source,
      }));
      return c.json({ items }, 200);
    });
}
