import { Hono } from "hono";
import type { DeploymentRow } from "../../../schema/tables.js";
import type { Config } from "../../config/env.js";
import { getDeployment } from "../../db/repo/deployments.js";
import { listHealthEvents, reportFailure, setHealthSettings } from "../../db/repo/health.js";
import { getLocation } from "../../db/repo/locations.js";
import { logTransitions } from "../../health/checker.js";
import { normalizePem } from "../../tls/ca-bundle.js";
import type { AppEnv, Deps } from "../app.js";
import { DeploymentId, EventsQuery, HealthCheckBody, LocationId, ReportFailureBody } from "../schemas.js";
import { invalidField, parseBody, parseParam, parseQuery } from "../validate.js";

function healthCheckView(d: DeploymentRow, config: Config) {
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

/** Health settings per deployment, passive failure reports and the transition history of a replica. */
export function healthApi({ handle, cache, config, clock, logger }: Deps) {
  const { db } = handle;
  return new Hono<AppEnv>()
    .get("/:id/health-check", async (c) =>
      c.json(healthCheckView(await getDeployment(db, parseParam(c, "id", DeploymentId)), config)),
    )
    .put("/:id/health-check", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const b = await parseBody(c, HealthCheckBody);
      const tls =
        b.tls === null || b.tls === undefined
          ? b.tls
          : {
              serverName: b.tls.server_name,
              caPem: typeof b.tls.ca_pem === "string" ? normalizePem(b.tls.ca_pem) : b.tls.ca_pem,
              insecureSkipVerify: b.tls.insecure_skip_verify,
            };
      if (tls) {
        // Judge the settings as they will be after this change (fields left out keep their values).
        const current = await getDeployment(db, id);
        const caPem = tls.caPem === undefined ? current.backendTlsCaPem : tls.caPem;
        const insecure =
          tls.insecureSkipVerify === undefined ? current.backendTlsInsecureSkipVerify : tls.insecureSkipVerify === true;
        if (insecure && caPem !== null) {
          throw invalidField(
            tls.insecureSkipVerify ? "body.tls.insecure_skip_verify" : "body.tls.ca_pem",
            "insecure_skip_verify cannot be combined with a CA bundle: verify against ca_pem, or skip verification, not both",
          );
        }
      }
      const row = await setHealthSettings(db, id, {
        path: b.path,
        intervalSeconds: b.interval_seconds,
        timeoutSeconds: b.timeout_seconds,
        expectedStatus: b.expected_status,
        mode: b.mode,
        tls,
      });
      return c.json(healthCheckView(row, config));
    })
    .post("/:id/locations/:location_id/failures", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const locationId = parseParam(c, "location_id", LocationId);
      const { reason } = await parseBody(c, ReportFailureBody);
      const { collapsed, transition } = await reportFailure(
        db,
        id,
        locationId,
        { ok: false, at: clock.now(), error: `reported: ${reason ?? "request failed"}` },
        { rise: config.HEALTH_RISE },
      );
      if (transition) {
        logTransitions(logger, [transition]);
        cache.invalidate();
      }
      const row = await getLocation(db, id, locationId);
      return c.json(
        { location_id: locationId, health_status: row.healthStatus, collapsed, transition: transition !== undefined },
        202,
      );
    })
    .get("/:id/locations/:location_id/events", async (c) => {
      const id = parseParam(c, "id", DeploymentId);
      const locationId = parseParam(c, "location_id", LocationId);
      const { limit } = parseQuery(c, EventsQuery);
      await getLocation(db, id, locationId); // 404 for an unknown replica
      const events = await listHealthEvents(db, id, locationId, limit);
      return c.json({
        items: events.map((e) => ({
          location_id: e.locationId,
          from: e.fromStatus,
          to: e.toStatus,
          at: e.at.toISOString(),
          reason: e.reason,
          source: e.source,
        })),
      });
    });
}
