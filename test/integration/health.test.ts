import { createServer as createH2cServer } from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type Socket } from "node:net";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { eq } from "drizzle-orm";
import { HealthImplementation } from "grpc-health-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations } from "../../schema/tables.js";
import { probeLeaseMs } from "../../src/health/state.js";
import { silentLogger } from "../../src/lib/logger.js";
import { deploymentServiceName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { listenOnLoopback } from "../helpers/loopback.js";
import { fakeClock, startReplica, type TestReplica } from "../helpers/replica.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
const manual = () => () => {}; // no cron: the test drives rounds

/** An HTTPS replica on 127.0.0.1 whose certificate names `replica.internal`, issued by a throwaway test CA. */
async function startTlsReplica() {
  const cert = makeCert({ sans: ["replica.internal"], issuedByCa: true });
  const caPem = cert.chainPem.slice(cert.certPem.length);
  const state = { hits: 0 };
  const server = createHttpsServer({ key: cert.keyPem, cert: cert.chainPem }, (req, res) => {
    if (req.url === "/health") {
      state.hits++;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
  return { caPem, state, ...(await listenOnLoopback(server)) };
}

/** A gRPC server with the standard grpc.health.v1 service (grpc-js + grpc-health-check), h2c on 127.0.0.1. */
async function startGrpcReplica() {
  const health = new HealthImplementation({ "": "SERVING" });
  const server = new GrpcServer();
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, health, close: () => server.forceShutdown() };
}

/** Accepts connections and never answers: a replica hanging for as long as the probe's timeout. */
async function startHangingReplica() {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  let connections = 0;
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) {
          s.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

describe.each(DRIVERS)("health checking on %s", (driver) => {
  let tdb: TestDb;
  let app: Running;
  let clock: ReturnType<typeof fakeClock>;
  const replicas: TestReplica[] = [];
  let dep = 0;
  let fire = () => {}; // the scheduler's tick, fired by hand
  const schedule = (tick: () => void) => {
    fire = tick;
    return () => {};
  };

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}/api/v1${path}`, {
      method,
      headers: admin,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  /** The served config; it must pass the schema and Traefik's semantics check, minus warnings a test accepts. */
  const config = async (accepted?: RegExp): Promise<DynamicConfig> => {
    const res = await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    const cfg = (await res.json()) as DynamicConfig;
    expect(traefikSchemaErrors(cfg).filter((e) => !accepted?.test(e))).toEqual([]);
    return cfg;
  };
  const servers = async (deploymentId: string, accepted?: RegExp) => {
    const cfg = await config(accepted);
    // Every route of the deployment points at its one service.
    return cfg.http?.services?.[deploymentServiceName(deploymentId)]?.loadBalancer?.servers ?? [];
  };
  const health = async (deploymentId: string, id: string) => {
    const res = await call("GET", `/deployments/${deploymentId}/locations`);
    const body = (await res.json()) as {
      items: {
        id: string;
        health_status: string;
        last_error: string | null;
        last_check_at: string | null;
        cpu_usage: number | null;
      }[];
    };
    return body.items.find((l) => l.id === id);
  };
  /** A deployment with one route and one registered replica that has passed its immediate first probe. */
  const setup = async () => {
    const id = `dep_h${++dep}`;
    const r = await startReplica(id);
    replicas.push(r);
    expect((await call("POST", "/deployments", { id, name: id })).status).toBe(201);
    expect(
      (
        await call("PUT", `/deployments/${id}/routing`, {
          domain: `${id.replace("_", "-")}.example.com`,
          target_port: r.port,
          ssl_enabled: false,
        })
      ).status,
    ).toBe(200);
    expect(
      (await call("PUT", `/deployments/${id}/locations/${id}_r1`, { address: "127.0.0.1", port: r.port })).status,
    ).toBe(201);
    await waitFor(async () => (await health(id, `${id}_r1`))?.health_status === "healthy");
    return { id, loc: `${id}_r1`, r };
  };
  const round = async (seconds = 30) => {
    clock.advance(seconds);
    return app.checker.runRound();
  };

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    clock = fakeClock();
    app = await startServer(testConfig({ HEALTH_ENABLED: "true", HEALTH_TIMEOUT_SECONDS: "0.5", HEALTH_RISE: "3" }), {
      handle: tdb.handle,
      logger: silentLogger,
      clock,
      schedule,
    });
  });
  afterEach(() => {
    for (const r of replicas) {
      r.mode = "ok";
    }
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(replicas.map((r) => r.close()));
    await tdb?.close();
  });

  it("probes a registered replica at once and routes it after the first success", async () => {
    const { id, r } = await setup();
    expect(r.healthHits).toBe(1);
    expect(await servers(id)).toEqual([{ url: `http://127.0.0.1:${r.port}` }]);
  });

  it("removes a replica on one failure and routes it again only after the 3rd consecutive success", async () => {
    const { id, loc, r } = await setup();
    r.mode = "fail";
    await round();
    expect((await health(id, loc))?.health_status).toBe("unhealthy");
    expect((await health(id, loc))?.last_error).toBe("HTTP 500");
    const down = await servers(id);
    expect(down.every((s) => s.weight === 0)).toBe(true); // router kept, Traefik answers 503
    r.mode = "ok";
    await round();
    await round();
    expect((await health(id, loc))?.health_status).toBe("unhealthy");
    expect((await servers(id)).every((s) => s.weight === 0)).toBe(true);
    await round();
    expect((await health(id, loc))?.health_status).toBe("healthy");
    expect(await servers(id)).toEqual([{ url: `http://127.0.0.1:${r.port}` }]);
  });

  it("does not probe a replica again before its interval", async () => {
    const { r } = await setup();
    const before = r.healthHits;
    await round(10);
    expect(r.healthHits).toBe(before);
    await round(20);
    expect(r.healthHits).toBe(before + 1);
  });

  it("counts a timeout as a failure", async () => {
    const { id, loc, r } = await setup();
    r.mode = "slow";
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toBe("timeout after 500 ms");
  });

  it("counts a refused connection as a failure", async () => {
    const { id, loc, r } = await setup();
    await r.close();
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toMatch(/^connection failed: ECONNREFUSED$/);
  });

  it("takes a replica out at once on a passive failure report, collapsing duplicates within 1 s", async () => {
    const { id, loc } = await setup();
    const first = await call("POST", `/deployments/${id}/locations/${loc}/failures`, {
      reason: "HTTP 502 from upstream",
    });
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({
      location_id: loc,
      health_status: "unhealthy",
      collapsed: false,
      transition: true,
    });
    expect((await servers(id)).every((s) => s.weight === 0)).toBe(true);
    const dup = await call("POST", `/deployments/${id}/locations/${loc}/failures`, {});
    expect(await dup.json()).toMatchObject({ collapsed: true, transition: false });
    const events = (await (await call("GET", `/deployments/${id}/locations/${loc}/events`)).json()) as {
      items: unknown[];
    };
    expect(events.items).toEqual([
      {
        location_id: loc,
        from: "healthy",
        to: "unhealthy",
        at: clock.now().toISOString(),
        reason: "reported: HTTP 502 from upstream",
        source: "report",
      },
      {
        location_id: loc,
        from: "unknown",
        to: "healthy",
        at: expect.any(String),
        reason: "first successful check",
        source: "probe",
      },
    ]);
  });

  it("reads CPU from a JSON /health body without changing the config bytes", async () => {
    const { id, loc, r } = await setup();
    const before = (
      await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } })
    ).headers.get("x-config-hash");
    r.cpu = 42.5;
    await round();
    expect((await health(id, loc))?.cpu_usage).toBe(42.5);
    const after = (
      await fetch(`${app.url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } })
    ).headers.get("x-config-hash");
    expect(after).toBe(before);
  });

  it("uses per-deployment path and expected status", async () => {
    const { id, loc } = await setup();
    const res = await call("PUT", `/deployments/${id}/health-check`, { path: "/health/deep", expected_status: "204" });
    expect(await res.json()).toMatchObject({
      path: "/health/deep",
      expected_status: "204",
      overrides: ["path", "expected_status"],
    });
    await round();
    const l = await health(id, loc);
    expect(l?.health_status).toBe("unhealthy");
    expect(l?.last_error).toBe("HTTP 200");
    const bad = await call("PUT", `/deployments/${id}/health-check`, { expected_status: "2xx) || 1" });
    expect(bad.status).toBe(400);
  });

  /** A deployment with one route of `protocol`, optional health settings, and one replica at 127.0.0.1:port. */
  const register = async (port: number, protocol: "http" | "https" | "h2c", healthCheck?: unknown) => {
    const id = `dep_h${++dep}`;
    expect((await call("POST", "/deployments", { id, name: id })).status).toBe(201);
    if (healthCheck) {
      expect((await call("PUT", `/deployments/${id}/health-check`, healthCheck)).status).toBe(200);
    }
    const routing = { domain: `${id.replace("_", "-")}.example.com`, target_port: port, ssl_enabled: false, protocol };
    expect((await call("PUT", `/deployments/${id}/routing`, routing)).status).toBe(200);
    expect((await call("PUT", `/deployments/${id}/locations/${id}_r1`, { address: "127.0.0.1", port })).status).toBe(
      201,
    );
    return { id, loc: `${id}_r1` };
  };
  const settled = (id: string, loc: string) =>
    waitFor(async () => {
      const l = await health(id, loc);
      return l && l.health_status !== "unknown" ? l : undefined;
    });

  it("probes an https replica over TLS: unhealthy without its CA, healthy and routed with it", async () => {
    const tls = await startTlsReplica();
    try {
      const { id, loc } = await register(tls.port, "https", { timeout_seconds: 5 });
      const first = await settled(id, loc);
      expect(first.health_status).toBe("unhealthy"); // the test CA is not a system root
      expect(first.last_error).toMatch(
        /^TLS certificate rejected \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/,
      );
      const put = await call("PUT", `/deployments/${id}/health-check`, {
        tls: { ca_pem: tls.caPem, server_name: "replica.internal" },
      });
      expect(put.status).toBe(200);
      expect(await put.json()).toMatchObject({
        mode: null,
        tls: { server_name: "replica.internal", ca_pem: tls.caPem, insecure_skip_verify: false },
        overrides: ["timeout_seconds", "tls"],
      });
      for (let i = 0; i < 3; i++) {
        await round();
      }
      expect(await health(id, loc)).toMatchObject({ health_status: "healthy", last_error: null });
      expect(await servers(id)).toEqual([{ url: `https://127.0.0.1:${tls.port}` }]);
      // The CA alone, with the address as the name: the certificate does not name 127.0.0.1.
      await call("PUT", `/deployments/${id}/health-check`, { tls: { server_name: null } });
      await round();
      const l = await health(id, loc);
      expect(l?.health_status).toBe("unhealthy");
      expect(l?.last_error).toMatch(/^TLS certificate rejected \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
      expect(tls.state.hits).toBe(3); // the handshake fails before any request is sent
    } finally {
      await tls.close();
    }
  });

  it("probes an https replica without verification only when insecure_skip_verify says so", async () => {
    const tls = await startTlsReplica();
    try {
      const { id, loc } = await register(tls.port, "https", {
        timeout_seconds: 5,
        tls: { insecure_skip_verify: true },
      });
      expect(await settled(id, loc)).toMatchObject({ health_status: "healthy", last_error: null });
      // Accepted warning: this deployment asked for no verification, and Traefik is told the same.
      const accepted = /^warn: .*insecureSkipVerify: backend certificates are not verified$/;
      expect(await servers(id, accepted)).toEqual([{ url: `https://127.0.0.1:${tls.port}` }]);
    } finally {
      await tls.close();
      // Traefik is told to skip verification too (the semantics check warns about it): not left for later tests.
      await call("DELETE", `/deployments/dep_h${dep}`);
    }
  });

  it("checks an h2c replica with the gRPC health protocol: SERVING is healthy, NOT_SERVING is not", async () => {
    const grpc = await startGrpcReplica();
    try {
      const { id, loc } = await register(grpc.port, "h2c", { timeout_seconds: 5 });
      expect((await settled(id, loc)).health_status).toBe("healthy");
      expect(await servers(id)).toEqual([{ url: `h2c://127.0.0.1:${grpc.port}` }]);
      grpc.health.setStatus("", "NOT_SERVING");
      await round();
      expect(await health(id, loc)).toMatchObject({
        health_status: "unhealthy",
        last_error: "gRPC health NOT_SERVING",
      });
      expect((await servers(id)).every((s) => s.weight === 0)).toBe(true);
    } finally {
      grpc.close();
    }
  });

  it("checks an h2c replica in http mode with an HTTP/2 prior-knowledge GET of the health path", async () => {
    let hits = 0;
    const h2c = createH2cServer((req, res) => {
      hits += req.url === "/healthz" ? 1 : 0;
      res.writeHead(req.url === "/healthz" ? 204 : 404);
      res.end();
    });
    await new Promise<void>((resolve) => h2c.listen(0, "127.0.0.1", resolve));
    const port = (h2c.address() as { port: number }).port;
    try {
      const { id, loc } = await register(port, "h2c", { mode: "http", path: "/healthz", expected_status: "204" });
      expect((await settled(id, loc)).health_status).toBe("healthy");
      expect(hits).toBe(1);
    } finally {
      await new Promise<void>((resolve) => h2c.close(() => resolve()));
    }
  });

  it("refuses unusable backend TLS and health mode settings with 400s naming the field", async () => {
    const { id } = await setup();
    const cert = makeCert({ sans: ["replica.internal"], issuedByCa: true });
    const tls = { caPem: cert.chainPem.slice(cert.certPem.length) };
    const cases: [unknown, string, RegExp][] = [
      [{ tls: { ca_pem: "hello" } }, "body.tls.ca_pem", /not PEM/],
      [
        { tls: { ca_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" } },
        "body.tls.ca_pem",
        /not a valid X\.509 certificate/,
      ],
      [{ tls: { ca_pem: makeCert({ sans: ["k.internal"] }).keyPem } }, "body.tls.ca_pem", /not a CERTIFICATE/],
      [{ tls: { ca_pem: `${tls.caPem}junk` } }, "body.tls.ca_pem", /unexpected text/],
      [{ tls: { ca_pem: tls.caPem, insecure_skip_verify: true } }, "body.tls.insecure_skip_verify", /not both/],
      [{ tls: { server_name: "bad name!" } }, "body.tls.server_name", /DNS name/],
      [{ tls: { verify: false } }, "body.tls", /unknown field/],
      [{ mode: "tcp" }, "body.mode", /grpc|http/],
    ];
    for (const [body, location, message] of cases) {
      const res = await call("PUT", `/deployments/${id}/health-check`, body);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { code: string; errors: { location: string; message: string }[] };
      expect(problem.code).toBe("VALIDATION_FAILED");
      expect(problem.errors).toHaveLength(1);
      expect(problem.errors[0]?.location).toBe(location);
      expect(problem.errors[0]?.message).toMatch(message);
    }
    // A CA set earlier and skip-verify asked for later: judged on the result, not on the request alone.
    expect((await call("PUT", `/deployments/${id}/health-check`, { tls: { ca_pem: tls.caPem } })).status).toBe(200);
    const later = await call("PUT", `/deployments/${id}/health-check`, { tls: { insecure_skip_verify: true } });
    expect(later.status).toBe(400);
    const cleared = await call("PUT", `/deployments/${id}/health-check`, { tls: null, mode: "grpc" });
    expect(await cleared.json()).toMatchObject({
      mode: "grpc",
      tls: { server_name: null, ca_pem: null, insecure_skip_verify: false },
      overrides: ["mode"],
    });
  });

  it("keeps probing healthy replicas on their interval while one replica hangs for its 60 s timeout", async () => {
    const hang = await startHangingReplica();
    const fast = await startReplica("fast");
    replicas.push(fast);
    try {
      const slow = await register(hang.port, "http", { timeout_seconds: 60 });
      await waitFor(async () => hang.connections() === 1);
      // The lease covers this replica's own 60 s timeout, not the 0.5 s default.
      const [row] = await tdb.handle.db
        .select({ until: deploymentLocations.probeLeaseUntil })
        .from(deploymentLocations)
        .where(eq(deploymentLocations.id, slow.loc));
      expect(row?.until?.getTime()).toBe(clock.now().getTime() + probeLeaseMs(60_000));
      const id = `dep_h${++dep}`;
      expect((await call("POST", "/deployments", { id, name: id })).status).toBe(201);
      const routing = { domain: `${id.replace("_", "-")}.example.com`, target_port: fast.port, ssl_enabled: false };
      expect((await call("PUT", `/deployments/${id}/routing`, routing)).status).toBe(200);
      const locs = Array.from({ length: 12 }, (_, i) => `${id}_r${i}`);
      for (const loc of locs) {
        expect((await call("PUT", `/deployments/${id}/locations/${loc}`, { address: "127.0.0.1" })).status).toBe(201);
      }
      const checkedAt = async () => {
        const res = await call("GET", `/deployments/${id}/locations`);
        const body = (await res.json()) as { items: { last_check_at: string | null; health_status: string }[] };
        return body.items;
      };
      await waitFor(async () => (await checkedAt()).every((l) => l.health_status === "healthy"));
      for (let k = 1; k <= 2; k++) {
        clock.advance(30); // 30 s, then 60 s: ticks while the hanging probe is still in flight
        fire();
        const now = clock.now().toISOString();
        // every healthy replica probed and recorded again, one 30 s interval after the last time
        await waitFor(async () => (await checkedAt()).every((l) => l.last_check_at === now));
      }
      expect(hang.connections()).toBe(1); // never claimed twice while its own probe can still run
      expect((await health(slow.id, slow.loc))?.health_status).toBe("unknown");
    } finally {
      await hang.close();
    }
  });

  it("keeps a 5 s interval at 5 s on a 5 s tick when the first probe fell between ticks", async () => {
    const r = await startReplica("five");
    replicas.push(r);
    clock.advance(0.2); // registered just after a tick
    const { id, loc } = await register(r.port, "http", { interval_seconds: 5 });
    await waitFor(async () => r.healthHits === 1 && (await health(id, loc))?.health_status === "healthy");
    clock.advance(4.8); // the next tick, 4.8 s after the first probe
    for (let k = 2; k <= 4; k++) {
      fire();
      const now = clock.now().toISOString();
      await waitFor(async () => (await health(id, loc))?.last_check_at === now); // probed and recorded
      expect(r.healthHits).toBe(k);
      clock.advance(5);
    }
  });
});

describe.skipIf(!process.env.DATABASE_URL)("two instances sharing one PostgreSQL", () => {
  it("probe each replica once per round between them, and take over a dead instance's share", async () => {
    const { openDb } = await import("../../src/db/client.js");
    const { claimDueReplicas } = await import("../../src/db/repo/health.js");
    const tdb = await makeTestDb("postgres");
    const clock = fakeClock();
    const cfg = testConfig({ HEALTH_ENABLED: "true", HEALTH_TIMEOUT_SECONDS: "1", CONFIG_REFRESH_SECONDS: "60" });
    const handles = [
      await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" }),
      await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" }),
    ];
    const [a, b] = await Promise.all(
      handles.map((handle, i) =>
        startServer({ ...cfg, INSTANCE_ID: `inst-${i}` }, { handle, logger: silentLogger, clock, schedule: manual }),
      ),
    );
    const replicas = await Promise.all(Array.from({ length: 6 }, (_, i) => startReplica(`r${i}`)));
    try {
      if (!a || !b) {
        throw new Error("instances did not start");
      }
      const db = tdb.handle.db;
      const { deployments, deploymentRouting, deploymentLocations } = await import("../../schema/tables.js");
      await db.insert(deployments).values({ id: "dep_multi", name: "multi" });
      await db
        .insert(deploymentRouting)
        .values({ id: "rt_multi", deploymentId: "dep_multi", domain: "multi.example.com", targetPort: 1 });
      await db.insert(deploymentLocations).values(
        replicas.flatMap((r, i) =>
          Array.from({ length: 10 }, (_, k) => ({
            id: `loc_${i}_${k}`,
            deploymentId: "dep_multi",
            address: "127.0.0.1",
            port: r.port,
          })),
        ),
      );
      const hits = () => replicas.reduce((n, r) => n + r.healthHits, 0);
      for (let roundNo = 1; roundNo <= 3; roundNo++) {
        clock.advance(30);
        const [ra, rb] = await Promise.all([a.checker.runRound(), b.checker.runRound()]);
        expect((ra?.probed ?? 0) + (rb?.probed ?? 0)).toBe(60);
        expect(hits()).toBe(60 * roundNo); // each of the 60 replica rows probed exactly once per round
      }
      // Instance A "dies" right after claiming everything that is due: its leases block B until they expire.
      clock.advance(30);
      const stolen = await claimDueReplicas((handles[0] as (typeof handles)[number]).db, {
        owner: "inst-0",
        now: clock.now(),
        defaultTimeoutMs: 1000, // lease: 1 s timeout + 10 s margin
        limit: 1000,
      });
      expect(stolen).toHaveLength(60);
      expect((await b.checker.runRound()).probed).toBe(0);
      clock.advance(10);
      expect((await b.checker.runRound()).probed).toBe(0); // the lease covers the probe's timeout and the margin
      clock.advance(2); // past the lease, well within one 30 s interval
      expect((await b.checker.runRound()).probed).toBe(60);
      expect(hits()).toBe(240);
    } finally {
      await Promise.all([a?.close(), b?.close()]);
      await Promise.all(handles.map((h) => h.close()));
      await Promise.all(replicas.map((r) => r.close()));
      await tdb.close();
    }
  });
});
