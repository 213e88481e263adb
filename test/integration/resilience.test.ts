import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { FULL_CHAIN_ORDER } from "../../src/render/middlewares.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { expectInvalid, expectProblem } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN, waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

/** Schema and semantics problems of a served config, for the Traefik version the server renders for. */
const traefikErrors = (config: unknown, minVersion: "3.6.0" | "3.7.0") => traefikSchemaErrors(config, { minVersion });

const SETTINGS = {
  retry: { attempts: 3, initial_interval_ms: 100 },
  circuit_breaker: {
    expression:
      "NetworkErrorRatio()>0.3 || (LatencyAtQuantileMS(99.0) > 500 && ResponseCodeRatio(500,600,0,600) > 0.1)",
    fallback_duration_ms: 15_000,
  },
  max_in_flight: { amount: 50 },
  timeouts: { dial_ms: 3000, response_header_ms: 45_000 },
  passive_health: { max_failed_attempts: 3 },
};
const VIEW = {
  retry: { attempts: 3, initial_interval_ms: 100 },
  circuit_breaker: {
    expression:
      "NetworkErrorRatio() > 0.3 || LatencyAtQuantileMS(99.0) > 500 && ResponseCodeRatio(500, 600, 0, 600) > 0.1",
    fallback_duration_ms: 15_000,
  },
  max_in_flight: { amount: 50, per: "host" },
  timeouts: { dial_ms: 3000, response_header_ms: 45_000 },
  passive_health: { failure_window_seconds: 10, max_failed_attempts: 3 },
  chain_order: [...FULL_CHAIN_ORDER],
};

describe.each(DRIVERS)("deployment resilience on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const path = (id = "dep_res") => `/api/v1/deployments/${id}/resilience`;
  const stored = async (id = "dep_res") =>
    rowsOf<{ resilience: unknown }>(
      await srv.db.execute(sql`select resilience from deployment_traffic where deployment_id = ${id}`),
    )[0]?.resilience;
  const served = async (): Promise<DynamicConfig> => {
    const reply = await api.get("/traefik/config", { token: PROVIDER_TOKEN });
    expect(reply.status).toBe(200);
    expect(traefikErrors(reply.body, "3.6.0")).toEqual([]);
    return reply.body as unknown as DynamicConfig;
  };

  beforeAll(async () => {
    await srv.seedDeployment("dep_res", { domain: "res.example.com", target_port: 3000, ssl_enabled: false });
  });

  it("shows only the chain order before anything is set", async () => {
    const r = await api.get(path());
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { chain_order: [...FULL_CHAIN_ORDER] } });
  });

  it("stores the settings normalized and shows them", async () => {
    const r = await api.put(path(), SETTINGS);
    expect({ status: r.status, contentType: r.contentType, body: r.body }).toEqual({
      status: 200,
      contentType: "application/json",
      body: VIEW,
    });
    const { chain_order: _, ...rest } = VIEW;
    expect(await stored()).toEqual(rest);
    const again = await api.get(path());
    expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: VIEW });
  });

  it("serves the middlewares in the route's chain, timeouts on its transport and passive health", async () => {
    expect((await api.put(path(), SETTINGS)).status).toBe(200);
    const cfg = await waitFor(async () => {
      const c = await served();
      return c.http?.middlewares?.["dep-res--retry"] ? c : undefined;
    });
    const [, router] =
      Object.entries(cfg.http.routers).find(([n]) => n.startsWith("dep-res--") && !n.endsWith("--to-http")) ?? [];
    expect(router?.middlewares).toEqual(["dep-res--in-flight", "dep-res--circuit-breaker", "dep-res--retry"]);
    expect(cfg.http.middlewares?.["dep-res--circuit-breaker"]).toEqual({
      circuitBreaker: { expression: VIEW.circuit_breaker.expression, fallbackDuration: "15s" },
    });
    expect(cfg.http.middlewares?.["dep-res--in-flight"]).toEqual({
      inFlightReq: { amount: 50, sourceCriterion: { requestHost: true } },
    });
    expect(cfg.http.middlewares?.["dep-res--retry"]).toEqual({ retry: { attempts: 3, initialInterval: "100ms" } });
    expect(cfg.http.serversTransports).toEqual({
      "dep-res--backend": { forwardingTimeouts: { dialTimeout: "3s", responseHeaderTimeout: "45s" } },
    });
    expect(cfg.http.services[router?.service ?? ""]?.loadBalancer).toMatchObject({
      passiveHealthCheck: { failureWindow: "10s", maxFailedAttempts: 3 },
      serversTransport: "dep-res--backend",
    });
  });

  it("replaces the whole settings on PUT, and DELETE removes them from the served config", async () => {
    const r = await api.put(path(), { max_in_flight: { amount: 5, per: "client_ip" } });
    expect(r.body).toEqual({ max_in_flight: { amount: 5, per: "client_ip" }, chain_order: [...FULL_CHAIN_ORDER] });
    const only = await waitFor(async () => {
      const c = await served();
      return c.http?.middlewares?.["dep-res--retry"] === undefined ? c : undefined;
    });
    expect(only.http.middlewares?.["dep-res--in-flight"]).toEqual({
      inFlightReq: { amount: 5, sourceCriterion: { ipStrategy: { depth: 0 } } },
    });
    expect(only.http.serversTransports).toBeUndefined();
    const del = await api.delete(path());
    expect(del.status).toBe(204);
    expect(await stored()).toBeNull();
    const gone = await waitFor(async () => {
      const c = await served();
      return c.http?.middlewares?.["dep-res--in-flight"] === undefined ? c : undefined;
    });
    expect(Object.keys(gone.http.middlewares ?? {}).filter((n) => n.startsWith("dep-res--"))).toEqual([]);
    expect((await api.get(path())).body).toEqual({ chain_order: [...FULL_CHAIN_ORDER] });
    expect((await api.delete(path())).status).toBe(204); // deleting nothing is fine
  });

  it("refuses an invalid circuit-breaker expression with the column of the error", async () => {
    const cases: [string, RegExp][] = [
      ["rm -rf /", /column 1: unknown name rm/],
      ["(NetworkErrorRatio() > 0.5", /column 1: unbalanced parentheses/],
      ["Foo() > 0.5", /column 1: unknown function Foo\(\)/],
      ["!(NetworkErrorRatio() > 0.5)", /column 1: '!' is not supported/],
      ["NetworkErrorRatio() > 1", /column 23: .*float64/],
      ["LatencyAtQuantileMS(50.0) > 100.0", /column 29: .*int/],
      ["NetworkErrorRatio() > -0.5", /column 23: .*no negative numbers/],
      ["RequestThreshold() > 10", /column 1: RequestThreshold\(\) does not exist in Traefik 3\.6 or 3\.7/],
    ];
    for (const [expression, message] of cases) {
      const r = await api.put(path(), { circuit_breaker: { expression } });
      const p = expectInvalid(r, "body.circuit_breaker.expression");
      expect(p.errors?.[0]?.message).toMatch(message);
    }
  });

  it("refuses other invalid settings, naming the field", async () => {
    expectInvalid(await api.put(path(), {}), "body");
    expectInvalid(await api.put(path(), { retry: { attempts: 0 } }), "body.retry.attempts");
    expectInvalid(await api.put(path(), { retry: { attempts: 11 } }), "body.retry.attempts");
    expectInvalid(await api.put(path(), { max_in_flight: { amount: 0 } }), "body.max_in_flight.amount");
    expectInvalid(await api.put(path(), { max_in_flight: { amount: 1, per: "user" } }), "body.max_in_flight.per");
    expectInvalid(await api.put(path(), { timeouts: {} }), "body.timeouts");
    expectInvalid(
      await api.put(path(), { passive_health: { max_failed_attempts: 0 } }),
      "body.passive_health.max_failed_attempts",
    );
    expectInvalid(await api.put(path(), { buffering: {} }), "body");
    // ip_depth reads X-Forwarded-For, which Traefik deletes unless TRUSTED_PROXY_CIDRS is set.
    const depth = await api.put(path(), { max_in_flight: { amount: 1, per: "client_ip", ip_depth: 1 } });
    expect(expectInvalid(depth, "body.max_in_flight.ip_depth").detail).toMatch(/TRUSTED_PROXY_CIDRS/);
  });

  it("refuses retry status and timeout while TRAEFIK_VERSION is 3.6", async () => {
    const r = await api.put(path(), { retry: { attempts: 2, status: ["502-504"], timeout_ms: 5000 } });
    const p = expectInvalid(r, "body.retry.status", "body.retry.timeout_ms");
    expect(p.errors?.[0]?.message).toMatch(/needs Traefik ≥ 3\.7 \(set TRAEFIK_VERSION=3\.7/);
  });

  it("answers 404 for an unknown deployment", async () => {
    expectProblem(await api.get(path("dep_nope")), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.put(path("dep_nope"), { retry: { attempts: 2 } }), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.delete(path("dep_nope")), 404, "DEPLOYMENT_NOT_FOUND");
  });
});

describe.each(DRIVERS)("deployment resilience with TRAEFIK_VERSION=3.7 on %s", (driver) => {
  const srv = useApiServer(driver, { TRAEFIK_VERSION: "3.7" });
  const { api } = srv;

  it("retries on status codes within a timeout, in a config Traefik 3.7 accepts", async () => {
    await srv.seedDeployment("dep_r37", { domain: "r37.example.com", target_port: 3000, ssl_enabled: false });
    const body = { retry: { attempts: 2, status: ["502", "503-504"], timeout_ms: 5000 } };
    const r = await api.put("/api/v1/deployments/dep_r37/resilience", body);
    expect({ status: r.status, body: r.body }).toEqual({
      status: 200,
      body: { ...body, chain_order: [...FULL_CHAIN_ORDER] },
    });
    const cfg = await waitFor(async () => {
      const reply = await api.get("/traefik/config", { token: PROVIDER_TOKEN });
      const c = reply.body as unknown as DynamicConfig;
      return c.http?.middlewares?.["dep-r37--retry"] ? c : undefined;
    });
    expect(traefikErrors(cfg, "3.7.0")).toEqual([]);
    expect(cfg.http.middlewares?.["dep-r37--retry"]).toEqual({
      retry: { attempts: 2, status: ["502", "503-504"], timeout: "5s" },
    });
  });
});
