import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { connect } from "node:net";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations, locationHealthEvents } from "../../schema/tables.js";
import type { RunningProxy } from "../../src/proxy/server.js";
import type { ProxySnapshot } from "../../src/proxy/table.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { listenOnLoopback } from "../helpers/loopback.js";
import { fakeClock } from "../helpers/replica.js";
import { seedDeployment, startTestProxy } from "../helpers/test-proxy.js";

const SECRET = "test-proxy-secret-0123456789abcdef";

/** What Traefik's `<route>--least-cpu` middleware adds to every request it sends to the proxy. */
const edge = (deploymentId: string) => ({ "x-obiente-deployment": deploymentId, "x-obiente-proxy-secret": SECRET });

/** An upstream on 127.0.0.1 that says who it is, echoes what it received on /headers, and can hang on /slow. */
interface Upstream {
  name: string;
  port: number;
  close(): Promise<void>;
}

async function startUpstream(name: string): Promise<Upstream> {
  const server: Server = createServer((req, res) => {
    if (req.url === "/slow") {
      return; // never answers: the proxy's response timeout fires
    }
    if (req.url === "/headers") {
      res.writeHead(200, {
        "content-type": "application/json",
        "x-replica": name,
        connection: "X-Up-Hop",
        "x-up-hop": "1",
        "proxy-authenticate": "Basic",
        "set-cookie": ["a=1; Path=/", "b=2; Path=/"],
      });
      res.end(JSON.stringify({ headers: req.headers, rawHeaders: req.rawHeaders }));
      return;
    }
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/plain", "x-replica": name });
      res.end(name);
    });
  });
  return { name, ...(await listenOnLoopback(server)) };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request over a fresh connection (node:http keeps Host and the path exactly as given). */
function send(
  base: string,
  opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: opts.path ?? "/",
        method: opts.method ?? "GET",
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

describe.each(DRIVERS)("fallback proxy on %s", (driver) => {
  let tdb: TestDb;
  let proxy: RunningProxy;
  const clock = fakeClock();
  const upstreams: Upstream[] = [];
  const deploymentOf = new Map<string, string>();
  let n = 0;

  /** A deployment on `<id>.proxy.test` with one replica per CPU value (null = no reading). */
  const deploy = async (cpus: (number | null)[], health: ("healthy" | "unhealthy")[] = []) => {
    const id = `dep_p${++n}`;
    const domain = `p${n}.proxy.test`;
    const ups = await Promise.all(cpus.map((_, i) => startUpstream(`${id}_r${i + 1}`)));
    upstreams.push(...ups);
    await seedDeployment(tdb.handle.db, {
      id,
      routeId: `rt_p${n}`,
      domain,
      targetPort: 1,
      replicas: ups.map((u, i) => ({
        id: u.name,
        port: u.port,
        healthStatus: health[i] ?? "healthy",
        cpuUsage: cpus[i] ?? null,
        cpuUpdatedAt: cpus[i] === null ? null : clock.now(),
      })),
    });
    await proxy.refresh();
    deploymentOf.set(domain, id);
    return { id, domain, ups };
  };
  /** A request as Traefik sends it: the route's Host plus the deployment and secret headers. */
  const get = (domain: string, path = "/", headers: Record<string, string> = {}) =>
    send(proxy.url, { path, headers: { host: domain, ...edge(deploymentOf.get(domain) ?? "dep_none"), ...headers } });
  const problem = (status: number, code: string, title: string, detail: string, instance = "/") => ({
    type: `urn:obiente-router:problem:${code.toLowerCase().replaceAll("_", "-")}`,
    title,
    status,
    detail,
    instance,
    code,
    requestId: expect.stringMatching(/^req_/),
  });

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    proxy = await startTestProxy(tdb.handle, { secret: SECRET, clock, refreshMs: 100 });
  });
  afterAll(async () => {
    await proxy?.close();
    await Promise.all(upstreams.map((u) => u.close()));
    await tdb?.close();
  });

  it("sends every request to the lowest-CPU replica and follows a CPU change", async () => {
    const { domain, ups } = await deploy([50, 10, 30]);
    const seen = await Promise.all(Array.from({ length: 10 }, () => get(domain)));
    expect(seen.map((r) => r.body)).toEqual(Array(10).fill(ups[1]?.name));
    // A CPU reading fires no NOTIFY: the interval refresh picks it up.
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ cpuUsage: 90, cpuUpdatedAt: clock.now() })
      .where(eq(deploymentLocations.id, ups[1]?.name ?? ""));
    await waitFor(async () => (await get(domain)).body === ups[2]?.name);
    const after = await Promise.all(Array.from({ length: 5 }, () => get(domain)));
    expect(after.map((r) => r.body)).toEqual(Array(5).fill(ups[2]?.name));
  });

  it("never routes to an unhealthy replica", async () => {
    const { domain, ups } = await deploy([5, 60], ["unhealthy", "healthy"]);
    const seen = await Promise.all(Array.from({ length: 6 }, () => get(domain)));
    expect(new Set(seen.map((r) => r.body))).toEqual(new Set([ups[1]?.name]));
  });

  it("answers 503 NO_HEALTHY_REPLICA with Retry-After when every replica is unhealthy", async () => {
    const { id, domain } = await deploy([5, 6], ["unhealthy", "unhealthy"]);
    const res = await get(domain, "/some/page?q=1");
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.headers["content-type"]).toBe("application/problem+json");
    expect(JSON.parse(res.body)).toEqual(
      problem(
        503,
        "NO_HEALTHY_REPLICA",
        "No healthy replica",
        `Deployment ${id} has no healthy replica right now. Try again shortly.`,
        "/some/page",
      ),
    );
    const page = await get(domain, "/", { accept: "text/html,application/xhtml+xml" });
    expect(page.status).toBe(503);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.body).toContain("No healthy replica");
  });

  it("answers 404 DEPLOYMENT_NOT_FOUND for an unknown deployment and 400 without the deployment header", async () => {
    const res = await get("nobody.proxy.test", "/", edge("dep_missing"));
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toBe("application/problem+json");
    expect(JSON.parse(res.body)).toEqual(
      problem(
        404,
        "DEPLOYMENT_NOT_FOUND",
        "Deployment not found",
        "No deployment is routed for deployment dep_missing.",
      ),
    );
    const { domain } = await deploy([10]);
    const byHost = await send(proxy.url, { headers: { host: domain, "x-obiente-proxy-secret": SECRET } });
    expect(byHost.status).toBe(400);
    expect(JSON.parse(byHost.body)).toEqual(
      problem(
        400,
        "BAD_REQUEST",
        "Bad Request",
        "X-Obiente-Deployment is missing: the fallback proxy routes by deployment only, never by Host.",
      ),
    );
  });

  it("routes by the deployment header only with the right secret; 401 without it, 403 with a wrong one", async () => {
    const { id, ups } = await deploy([10]);
    const ok = await get("anything.example", "/", edge(id));
    expect(ok.status).toBe(200);
    expect(ok.body).toBe(ups[0]?.name);
    const forgeries: [Record<string, string>, number][] = [
      [{ "x-obiente-deployment": id }, 401],
      [{ "x-obiente-deployment": id, "x-obiente-proxy-secret": "wrong-secret-0123456789abcdef0" }, 403],
      [{ "x-obiente-deployment": id, "x-obiente-proxy-secret": "" }, 403],
    ];
    for (const [forged, status] of forgeries) {
      const res = await send(proxy.url, { headers: { host: "anything.example", ...forged } });
      expect(res.status).toBe(status);
      expect(res.headers["content-type"]).toBe("application/problem+json");
      expect(JSON.parse(res.body)).toEqual(
        status === 401
          ? problem(
              401,
              "PROXY_UNAUTHENTICATED",
              "Unauthenticated",
              "This port serves requests forwarded by the edge proxy only.",
            )
          : problem(403, "PROXY_FORBIDDEN", "Forbidden", "This port serves requests forwarded by the edge proxy only."),
      );
    }
  });

  it("refuses every request from a peer outside FALLBACK_TRUSTED_CIDRS, even with the secret", async () => {
    const { id, domain } = await deploy([10]);
    const strict = await startTestProxy(
      {
        loadSnapshot: async () => {
          const { loadProxySnapshot } = await import("../../src/db/repo/proxy-table.js");
          return loadProxySnapshot(tdb.handle.db);
        },
        reportFailure: async () => {},
      },
      { secret: SECRET, trustedCidrs: ["10.0.0.0/8"], clock, refreshMs: 60_000 },
    );
    try {
      const res = await send(strict.url, {
        headers: { host: domain, ...edge(id) },
      });
      expect(res.status).toBe(403);
      expect((await send(strict.url, { headers: { host: domain } })).status).toBe(403); // nor without headers
    } finally {
      await strict.close();
    }
  });

  it("drops hop-by-hop headers both ways, strips the routing headers and sets X-Forwarded-*", async () => {
    const { id, domain, ups } = await deploy([10]);
    const res = await send(proxy.url, {
      path: "/headers",
      headers: {
        host: domain,
        connection: "keep-alive, X-Hop",
        "x-hop": "secret-hop",
        "keep-alive": "timeout=5",
        te: "trailers",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "x-forwarded-for": "203.0.113.5",
        "x-obiente-deployment": id,
        "x-obiente-proxy-secret": SECRET,
        "x-custom": "kept",
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-replica"]).toBe(ups[0]?.name);
    expect(res.headers["x-up-hop"]).toBeUndefined();
    expect(res.headers["proxy-authenticate"]).toBeUndefined();
    expect(res.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; Path=/"]); // repeated headers survive
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    expect(seen.headers).toEqual({
      host: domain,
      "x-custom": "kept",
      "x-forwarded-for": "203.0.113.5, 127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": domain,
      connection: "keep-alive", // undici's own, to the upstream
    });
  });

  it("marks a replica it cannot connect to unhealthy in the database and retries the GET elsewhere", async () => {
    const { id, domain, ups } = await deploy([10, 50]);
    const [dead, alive] = ups;
    await dead?.close(); // connects are refused from now on
    const res = await get(domain);
    expect(res.status).toBe(200);
    expect(res.body).toBe(alive?.name);
    const db = tdb.handle.db;
    const row = await waitFor(async () => {
      const [r] = await db
        .select()
        .from(deploymentLocations)
        .where(eq(deploymentLocations.id, dead?.name ?? ""));
      return r?.healthStatus === "unhealthy" ? r : undefined;
    });
    expect(row.lastError).toBe("reported: fallback proxy: connection failed: ECONNREFUSED");
    const events = await db
      .select()
      .from(locationHealthEvents)
      .where(and(eq(locationHealthEvents.deploymentId, id), eq(locationHealthEvents.locationId, dead?.name ?? "")));
    expect(events).toMatchObject([{ fromStatus: "healthy", toStatus: "unhealthy", source: "report", at: clock.now() }]);
    // Out of rotation at once: the next requests go straight to the live replica.
    const next = await Promise.all(Array.from({ length: 3 }, () => get(domain)));
    expect(next.map((r) => r.body)).toEqual(Array(3).fill(alive?.name));
  });

  it("does not retry a request with a body: 502 BAD_UPSTREAM", async () => {
    const { domain, ups } = await deploy([10, 50]);
    await ups[0]?.close();
    const res = await send(proxy.url, {
      method: "POST",
      headers: { host: domain, ...edge(deploymentOf.get(domain) ?? "") },
      body: "payload",
    });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toEqual(
      problem(502, "BAD_UPSTREAM", "Bad upstream", "The replica could not be reached."),
    );
    expect((await get(domain)).body).toBe(ups[1]?.name); // and the dead one is out now
  });

  it("answers 504 UPSTREAM_TIMEOUT when the replica does not answer in time", async () => {
    const { domain } = await deploy([10]);
    const res = await get(domain, "/slow");
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body)).toEqual(
      problem(504, "UPSTREAM_TIMEOUT", "Upstream timeout", "The replica did not answer in time.", "/slow"),
    );
  });

  it("refuses '..' segments with 400 and survives malformed requests (encodings: proxy-attacks.test.ts)", async () => {
    const { domain } = await deploy([10]);
    for (const path of ["/a/../b", "/%2e%2e/etc/passwd"]) {
      const res = await get(domain, path);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ code: "INVALID_PATH", status: 400 });
    }
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(new URL(proxy.url).port), "127.0.0.1");
      let out = "";
      s.on("data", (c) => {
        out += c.toString();
      });
      s.on("end", () => resolve(out));
      s.on("error", reject);
      s.write("GET / HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n");
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toContain("content-type: application/problem+json");
    expect(raw).toContain('"code":"BAD_REQUEST"');
    expect((await get(domain)).status).toBe(200); // still serving
  });

  it("picks up a new route at once through LISTEN/NOTIFY", async () => {
    const listening = await startTestProxy(tdb.handle, {
      secret: SECRET,
      clock,
      refreshMs: 600_000, // only the notification can bring the route in
    });
    try {
      const { domain, ups } = await deploy([10]);
      const res = await waitFor(async () => {
        const r = await send(listening.url, { headers: { host: domain, ...edge(deploymentOf.get(domain) ?? "") } });
        return r.status === 200 ? r : undefined;
      });
      expect(res.body).toBe(ups[0]?.name);
    } finally {
      await listening.close();
    }
  });
});

describe("fallback proxy table refresh", () => {
  it("keeps serving the last table when a refresh fails", async () => {
    const up = await startUpstream("solo");
    const snapshot: ProxySnapshot = {
      routes: [
        {
          id: "rt_s",
          deploymentId: "dep_s",
          domain: "s.proxy.test",
          pathPrefix: "/",
          targetPort: up.port,
          protocol: "http",
          isPrimary: true,
          healthIntervalSeconds: null,
        },
      ],
      replicas: [
        {
          id: "s1",
          deploymentId: "dep_s",
          address: "127.0.0.1",
          port: null,
          status: "running",
          healthStatus: "healthy",
          cpuUsage: null,
          cpuUpdatedAt: null,
        },
      ],
    };
    let fail = false;
    let loads = 0;
    const p = await startTestProxy(
      {
        loadSnapshot: async () => {
          loads++;
          if (fail) {
            throw new Error("database unavailable");
          }
          return snapshot;
        },
        reportFailure: async () => {},
      },
      { secret: SECRET, refreshMs: 20 },
    );
    try {
      fail = true;
      const before = loads;
      await waitFor(async () => loads > before + 2);
      const res = await send(p.url, { headers: { host: "s.proxy.test", ...edge("dep_s") } });
      expect(res.status).toBe(200);
      expect(res.body).toBe("solo");
    } finally {
      await p.close();
      await up.close();
    }
  });
});
