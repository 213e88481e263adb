import { request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, waitFor } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS } from "../helpers/db.js";
import { fakeClock, startReplica, type TestReplica } from "../helpers/replica.js";

const METRICS_TOKEN = "metrics-token-0123456789abcdef";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;
const TYPE_RE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;

/** A strict reader of the Prometheus text format (0.0.4): every line a comment, a blank or a sample of a typed family. */
function parsePrometheus(text: string): Sample[] {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) {
      continue;
    }
    const type = TYPE_RE.exec(line);
    if (type) {
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) {
      throw new Error(`not Prometheus text: ${line}`);
    }
    const [, name = "", body = "", raw = ""] = m;
    const labels: Record<string, string> = {};
    LABEL_RE.lastIndex = 0;
    while (LABEL_RE.lastIndex < body.length) {
      const l = LABEL_RE.exec(body);
      if (!l) {
        throw new Error(`bad labels: ${line}`);
      }
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, ch: string) => (ch === "n" ? "\n" : ch));
    }
    const family = name.replace(/_(bucket|sum|count)$/, "");
    if (!types.has(name) && types.get(family) !== "histogram") {
      throw new Error(`sample of an undeclared family: ${line}`);
    }
    // Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes "Nan").
    const special: Record<string, number> = { nan: Number.NaN, "+inf": Infinity, inf: Infinity, "-inf": -Infinity };
    const value = special[raw.toLowerCase()] ?? Number(raw);
    if (Number.isNaN(value) && raw.toLowerCase() !== "nan") {
      throw new Error(`bad value: ${line}`);
    }
    samples.push({ name, labels, value });
  }
  return samples;
}

/** The value of the one sample with this name and these labels (undefined when absent). */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(hits.length).toBeLessThanOrEqual(1);
  return hits[0]?.value;
}

const sumOf = (samples: Sample[], name: string) =>
  samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

describe.each(DRIVERS)("GET /metrics on %s", (driver) => {
  const clock = fakeClock(new Date());
  const srv = useApiServer(
    driver,
    {
      METRICS_TOKEN,
      HEALTH_ENABLED: "true",
      HEALTH_TIMEOUT_SECONDS: "10",
      FALLBACK_ENABLED: "true",
      PROXY_PORT: "0",
      PROXY_REFRESH_MS: "100",
    },
    { captureLogs: true, start: { clock, schedule: () => () => {} } },
  );
  const { api } = srv;
  const replicas: TestReplica[] = [];
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
  });

  const scrape = async (token: string | null = METRICS_TOKEN) => api.get("/metrics", { token });
  const poll = async (node: string) => {
    const r = await api.get("/traefik/config", { token: PROVIDER_TOKEN, headers: { "x-traefik-node": node } });
    expect(r.status).toBe(200);
    return r;
  };
  const healthOf = async (id: string) => {
    const r = await api.get<{ items: { id: string; health_status: string }[] }>(`/api/v1/deployments/${id}/locations`);
    return r.body.items;
  };

  it("counts API requests by route template, polls per node, probes, proxied requests and certificates", async () => {
    // Writes: two deployments, a least-cpu route (through the bundled proxy), two replicas probed on registration.
    const [r1, r2] = [await startReplica("r1"), await startReplica("r2")];
    replicas.push(r1, r2);
    await srv.seedDeployment("dep_m", {
      domain: "m.example.com",
      target_port: r1.port,
      load_balancer_algo: "least-cpu",
      ssl_enabled: false,
    });
    await srv.seedDeployment("dep_n");
    await srv.seedLocation("dep_m", "r1", { address: "127.0.0.1", port: r1.port, cpu_usage: 50 });
    await srv.seedLocation("dep_m", "r2", { address: "127.0.0.1", port: r2.port, cpu_usage: 10 });
    // (A probe that times out on a loaded machine would leave a replica unhealthy until a round: generous timeout.)
    await waitFor(async () => (await healthOf("dep_m")).every((l) => l.health_status === "healthy"), 15_000);
    // Failed requests: an unknown path and an unknown deployment.
    expect((await api.get("/api/v1/deployments/dep_m/nothing-here")).status).toBe(404);
    expect((await api.get("/api/v1/deployments/dep_missing")).status).toBe(404);

    // Polls from two Traefik nodes.
    for (let i = 0; i < 3; i++) {
      await poll("traefik-a");
    }
    const seen = (await poll("traefik-b")).body as unknown as DynamicConfig;
    await poll("traefik-b");

    // Requests through the fallback proxy, as Traefik sends them.
    const routes = await api.get<{ domains: { id: string }[] }>("/api/v1/deployments/dep_m/routing");
    const name = routeName({ id: routes.body.domains[0]?.id ?? "", deploymentId: "dep_m" });
    const proxyUrl = seen.http.services[seen.http.routers[name]?.service ?? ""]?.loadBalancer?.servers[0]?.url ?? "";
    const mw = seen.http.routers[name]?.middlewares?.at(-1) ?? "";
    const headers = seen.http.middlewares?.[mw]?.headers?.customRequestHeaders as Record<string, string>;
    const outcomes = new Map<string, number>();
    const count = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    const OUTCOME: Record<number, string> = { 200: "proxied", 403: "proxy_forbidden", 503: "no_healthy_replica" };
    const hit = async (extra: Record<string, string> = {}) => {
      const r = await request(`${proxyUrl}/`, { headers: { ...headers, host: "m.example.com", ...extra } });
      const body = await r.body.text();
      count(OUTCOME[r.statusCode] ?? `status ${r.statusCode}`);
      return r.statusCode === 200 ? body : `status ${r.statusCode}`;
    };
    await waitFor(async () => (await hit()) === "r2", 10_000); // the proxy's table follows the database
    expect(await hit()).toBe("r2");
    expect(await hit({ "x-obiente-proxy-secret": "wrong-wrong-wrong-wrong" })).toBe("status 403");
    await r2.close(); // the lowest-CPU replica goes away: the next GET fails on it and is retried on r1
    await new Promise((r) => setTimeout(r, 50));
    expect(await hit()).toBe("r1");

    // A health round in which r1 answers 500 (r2, gone, fails too unless the proxy's report already put it off).
    const okBefore = r1.healthHits + r2.healthHits;
    r1.mode = "fail";
    clock.advance(60);
    const round = await srv.checker.runRound();
    expect(round.failed).toBeGreaterThanOrEqual(1);

    // A certificate, and a write after traefik-b's last poll: only traefik-a fetches the new config.
    const cert = makeCert({ sans: ["metrics.example.com"] });
    const uploaded = await api.post<{ id: string }>("/api/v1/certificates", {
      cert_pem: cert.certPem,
      key_pem: cert.keyPem,
    });
    expect(uploaded.status).toBe(201);
    await srv.seedDeployment("dep_o", { domain: "o.example.com", target_port: 8080, ssl_enabled: false });
    const last = await poll("traefik-a");

    const reply = await scrape();
    expect(reply.status).toBe(200);
    expect(reply.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    const samples = parsePrometheus(reply.text);
    const http = (method: string, route: string, status: number) =>
      sampleValue(samples, "obiente_http_requests_total", { method, route, status: String(status) });

    // API requests, by route template.
    expect(http("POST", "/api/v1/deployments", 201)).toBe(3);
    expect(http("PUT", "/api/v1/deployments/:id/routing", 200)).toBe(2);
    expect(http("PUT", "/api/v1/deployments/:id/locations/:location_id", 201)).toBe(2);
    expect(http("GET", "/api/v1/deployments/:id", 404)).toBe(1);
    expect(http("GET", "unmatched", 404)).toBe(1);
    expect(http("GET", "/traefik/config", 200)).toBe(6);
    const routeLabels = samples.filter((s) => s.name === "obiente_http_requests_total").map((s) => s.labels.route);
    for (const route of routeLabels) {
      expect(route).toMatch(/^(unmatched|\/[A-Za-z0-9/:._-]*)$/);
      expect(route).not.toMatch(/dep_|r1|r2/); // templates, never the ids in a path
    }
    for (const s of samples.filter((x) => x.name === "obiente_http_requests_total")) {
      expect(s.value).toBeGreaterThan(0);
    }
    // Every request was timed once: the histogram counts add up to the request counts, per method and route.
    const byRoute = (name: string) => {
      const m = new Map<string, number>();
      for (const s of samples.filter((x) => x.name === name)) {
        const k = `${s.labels.method} ${s.labels.route}`;
        m.set(k, (m.get(k) ?? 0) + s.value);
      }
      return m;
    };
    expect(byRoute("obiente_http_request_duration_seconds_count")).toEqual(byRoute("obiente_http_requests_total"));

    // Polls per node; whether each has the config served now; seconds since its last poll (on the service's clock).
    expect(sampleValue(samples, "obiente_traefik_polls_total", { node: "traefik-a" })).toBe(4);
    expect(sampleValue(samples, "obiente_traefik_polls_total", { node: "traefik-b" })).toBe(2);
    expect(sampleValue(samples, "obiente_traefik_poller_current", { node: "traefik-a" })).toBe(1);
    expect(sampleValue(samples, "obiente_traefik_poller_current", { node: "traefik-b" })).toBe(0);
    expect(sampleValue(samples, "obiente_traefik_last_poll_age_seconds", { node: "traefik-a" })).toBe(0);
    expect(sampleValue(samples, "obiente_traefik_last_poll_age_seconds", { node: "traefik-b" })).toBe(60);

    // The served config.
    expect(sampleValue(samples, "obiente_config_revision")).toBe(Number(last.headers.get("x-config-revision")));
    expect(sampleValue(samples, "obiente_config_bytes")).toBe(Buffer.byteLength(last.text));
    expect(sampleValue(samples, "obiente_config_stale")).toBe(0);
    expect(sampleValue(samples, "obiente_render_skipped_rows")).toBe(0);
    expect(sampleValue(samples, "obiente_render_total", { result: "failed" })).toBe(0);
    expect(sampleValue(samples, "obiente_render_total", { result: "ok" })).toBeGreaterThanOrEqual(
      Number(last.headers.get("x-config-revision")),
    );
    expect(sampleValue(samples, "obiente_render_duration_seconds_count")).toBe(
      sumOf(samples, "obiente_render_total"), // a failed load renders nothing; none failed here
    );

    // Health probes: the immediate ones on registration (each reached a replica's /health), then the round.
    expect(sampleValue(samples, "obiente_health_probes_total", { result: "ok" })).toBe(okBefore);
    expect(sampleValue(samples, "obiente_health_probes_total", { result: "failed" })).toBe(round.failed);
    expect(sampleValue(samples, "obiente_health_probe_duration_seconds_count")).toBe(okBefore + round.failed);
    const listed = await healthOf("dep_m");
    for (const health of ["healthy", "unhealthy", "unknown"]) {
      expect(sampleValue(samples, "obiente_replicas", { health })).toBe(
        listed.filter((l) => l.health_status === health).length,
      );
    }
    expect(sampleValue(samples, "obiente_replicas", { health: "unhealthy" })).toBe(2); // r1 by the probe, r2 either way

    // The fallback proxy: each answer by outcome, the one failed attempt on r2 and its retry on r1.
    for (const [outcome, n] of outcomes) {
      expect({ outcome, n: sampleValue(samples, "obiente_proxy_requests_total", { outcome }) }).toEqual({ outcome, n });
    }
    const answered = [...outcomes.values()].reduce((a, b) => a + b, 0);
    expect(sumOf(samples, "obiente_proxy_requests_total")).toBe(answered);
    expect(sampleValue(samples, "obiente_proxy_request_duration_seconds_count")).toBe(answered);
    expect(sampleValue(samples, "obiente_proxy_retries_total")).toBe(1);
    expect(sumOf(samples, "obiente_proxy_upstream_errors_total")).toBe(1);

    // Certificate expiry, in seconds from the service's clock.
    const certs = samples.filter((s) => s.name === "obiente_certificate_expiry_seconds");
    expect(certs.map((s) => s.labels.certificate_id)).toEqual([uploaded.body.id]);
    const secondsLeft = (cert.notAfter.getTime() - clock.now().getTime()) / 1000;
    expect(Math.abs((certs[0]?.value ?? 0) - secondsLeft)).toBeLessThanOrEqual(1);

    // Process metrics (prom-client's defaults).
    expect(sampleValue(samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(sampleValue(samples, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
  });

  it("logs polls, probes of the service and scrapes at debug, and every other request at info", async () => {
    await api.get("/healthz", { token: null });
    await api.get("/readyz", { token: null });
    await scrape();
    await poll("traefik-a");
    await api.get("/api/v1/deployments");
    const requests = srv.logs
      .map((l) => JSON.parse(l) as { level: string; msg: string; route?: string; requestId?: string })
      .filter((l) => l.msg === "request");
    const levelOf = (route: string) => [...new Set(requests.filter((l) => l.route === route).map((l) => l.level))];
    for (const route of ["/healthz", "/readyz", "/metrics", "/traefik/config"]) {
      expect({ route, levels: levelOf(route) }).toEqual({ route, levels: ["debug"] });
    }
    expect(levelOf("/api/v1/deployments")).toEqual(["info"]);
    expect(requests.every((l) => /^req_[0-9a-f]{12}$/.test(l.requestId ?? ""))).toBe(true);
  });

  it("answers 401 without METRICS_TOKEN, with a wrong one and with the admin token", async () => {
    for (const token of [null, "wrong-token-0123456789abcdef", ADMIN_TOKEN]) {
      const r = await scrape(token);
      expect({ token, status: r.status, type: r.contentType }).toEqual({
        token,
        status: 401,
        type: "application/problem+json",
      });
      expect(r.headers.get("www-authenticate")).toBe('Bearer realm="metrics"');
      expect(r.text).not.toContain("obiente_");
    }
    expect((await scrape()).status).toBe(200);
  });
});
