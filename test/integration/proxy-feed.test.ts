import { createServer, request, type Server } from "node:http";
import { eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations, deploymentRouting } from "../../schema/tables.js";
import { silentLogger } from "../../src/lib/logger.js";
import { proxyDbDeps } from "../../src/proxy/from-db.js";
import type { ProxyOptions, RunningProxy } from "../../src/proxy/server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { listenOnLoopback } from "../helpers/loopback.js";
import { fakeClock } from "../helpers/replica.js";
import { seedDeployment, startTestProxy } from "../helpers/test-proxy.js";

const SECRET = "test-proxy-secret-0123456789abcdef";

/** An upstream on 127.0.0.1 answering every request with its name. */
async function startUpstream(name: string) {
  const server: Server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(name);
  });
  return { name, ...(await listenOnLoopback(server)) };
}

/** One request as Traefik's least-cpu middleware sends it; status and body. */
function get(base: string, deploymentId: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: "/",
        headers: { host: "feed.test", "x-obiente-deployment": deploymentId, "x-obiente-proxy-secret": SECRET },
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The proxy's database loads, counted: which ran, and which deployments each read. */
interface Loads {
  full: number;
  deployments: string[][];
  readings: string[][];
}

/** The proxy wired to the database as the server wires it, every load it runs recorded in `loads`. */
function countedDeps(tdb: TestDb, loads: Loads): Partial<ProxyOptions> & Pick<ProxyOptions, "loadSnapshot"> {
  const deps = proxyDbDeps(tdb.handle, { rise: 3, logger: silentLogger });
  const { loadDeployments, loadReadings } = deps;
  if (!loadDeployments || !loadReadings) {
    throw new Error("proxyDbDeps reads deployments and readings");
  }
  return {
    ...deps,
    loadSnapshot: () => {
      loads.full++;
      return deps.loadSnapshot();
    },
    loadDeployments: (ids) => {
      loads.deployments.push([...ids]);
      return loadDeployments(ids);
    },
    loadReadings: (ids) => {
      loads.readings.push([...ids]);
      return loadReadings(ids);
    },
  };
}

describe.each(DRIVERS)("fallback proxy following the change feed on %s", (driver) => {
  let tdb: TestDb;
  const upstreams: { close(): Promise<void> }[] = [];
  const proxies: RunningProxy[] = [];
  let n = 0;

  /** A deployment with one route and one healthy replica per upstream name; its id. */
  const deploy = async (algo: "least-conn" | "round-robin", names: string[]) => {
    const id = `dep_f${++n}`;
    const ups = await Promise.all(names.map((name) => startUpstream(`${id}_${name}`)));
    upstreams.push(...ups);
    await seedDeployment(tdb.handle.db, {
      id,
      domain: `f${n}.feed.test`,
      targetPort: 1,
      loadBalancerAlgo: algo,
      replicas: ups.map((u) => ({ id: u.name, port: u.port })),
    });
    return { id, ups };
  };
  /** A proxy whose loads are counted; `full` is 2 once it settled (the start, then LISTEN in place). */
  const start = async (opts: Partial<ProxyOptions>) => {
    const loads: Loads = { full: 0, deployments: [], readings: [] };
    const { listen, ...deps } = countedDeps(tdb, loads);
    const proxy = await startTestProxy(
      { loadSnapshot: deps.loadSnapshot, reportFailure: deps.reportFailure ?? (async () => {}), listen },
      { secret: SECRET, ...deps, ...opts },
    );
    proxies.push(proxy);
    await waitFor(async () => loads.full >= 2);
    return { proxy, loads };
  };

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  afterAll(async () => {
    await Promise.all(upstreams.map((u) => u.close()));
    await tdb?.close();
  });

  it("routes a change to one least-CPU deployment through its notification, reading only that deployment", async () => {
    const a = await deploy("least-conn", ["one"]);
    const b = await deploy("least-conn", ["one"]);
    const { proxy, loads } = await start({ refreshMs: 600_000, fullRefreshMs: 600_000 });
    expect((await get(proxy.url, a.id)).body).toBe(a.ups[0]?.name);
    const fullBefore = loads.full;
    const fresh = await startUpstream(`${a.id}_two`);
    upstreams.push(fresh);
    await tdb.handle.db.transaction(async (tx) => {
      await tx.insert(deploymentLocations).values({
        id: fresh.name,
        deploymentId: a.id,
        address: "127.0.0.1",
        port: fresh.port,
        healthStatus: "healthy",
      });
      await tx
        .update(deploymentLocations)
        .set({ healthStatus: "unhealthy" })
        .where(eq(deploymentLocations.id, a.ups[0]?.name ?? ""));
    });
    await waitFor(async () => (await get(proxy.url, a.id)).body === fresh.name);
    expect((await get(proxy.url, b.id)).body).toBe(b.ups[0]?.name); // the other deployment is untouched
    expect(loads.full).toBe(fullBefore);
    expect(new Set(loads.deployments.flat())).toEqual(new Set([a.id]));
  });

  it("stops sending new requests to a replica once its drain's notification arrives", async () => {
    const a = await deploy("least-conn", ["one", "two"]);
    const { proxy, loads } = await start({ refreshMs: 600_000, fullRefreshMs: 600_000 });
    const fullBefore = loads.full;
    const [draining, staying] = a.ups;
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ drainStartedAt: new Date(), drainUntil: new Date(Date.now() + 60_000) })
      .where(eq(deploymentLocations.id, draining?.name ?? ""));
    await waitFor(async () => proxy.table().byDeployment(a.id, "", "/")?.replicas.length === 1);
    const seen = await Promise.all(Array.from({ length: 4 }, () => get(proxy.url, a.id)));
    expect(seen.map((r) => r.body)).toEqual(Array(4).fill(staying?.name));
    expect(loads.full).toBe(fullBefore);
  });

  it("takes a deployment switching away from least-CPU out of the table, and back in when it returns", async () => {
    const a = await deploy("least-conn", ["one"]);
    const { proxy, loads } = await start({ refreshMs: 600_000, fullRefreshMs: 600_000 });
    expect((await get(proxy.url, a.id)).status).toBe(200);
    const fullBefore = loads.full;
    const setAlgo = (algo: "least-conn" | "round-robin") =>
      tdb.handle.db
        .update(deploymentRouting)
        .set({ loadBalancerAlgo: algo })
        .where(eq(deploymentRouting.deploymentId, a.id));
    await setAlgo("round-robin");
    // A round-robin deployment is not reachable through the proxy (issue 10 #1).
    await waitFor(async () => (await get(proxy.url, a.id)).status === 404);
    expect(proxy.table().byDeployment(a.id, "", "/")).toBeUndefined();
    await setAlgo("least-conn");
    await waitFor(async () => (await get(proxy.url, a.id)).body === a.ups[0]?.name);
    expect(loads.full).toBe(fullBefore);
    expect(loads.deployments.flat().every((id) => id === a.id)).toBe(true);
  });

  it("reloads the whole table on the empty payload (certificates, TRUNCATE) and ignores the control payload", async () => {
    const a = await deploy("least-conn", ["one"]);
    const { proxy, loads } = await start({ refreshMs: 600_000, fullRefreshMs: 600_000 });
    const fullBefore = loads.full;
    await tdb.handle.db.execute(sql`select pg_notify('obiente_routing', 'c')`);
    await tdb.handle.db.execute(sql`select pg_notify('obiente_routing', '')`);
    await waitFor(async () => loads.full === fullBefore + 1);
    expect(loads.deployments).toEqual([]); // `c` (a freeze, a confirmation) asks nothing of the proxy
    expect((await get(proxy.url, a.id)).status).toBe(200);
  });

  it.runIf(driver === "postgres")("reloads the whole table after its LISTEN session reconnects", async () => {
    const a = await deploy("least-conn", ["one"]);
    const { proxy, loads } = await start({ refreshMs: 600_000, fullRefreshMs: 600_000 });
    const fullBefore = loads.full;
    // This test database's listening session only (each test database is its own).
    await tdb.handle.db.execute(
      sql`select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'obiente-router-listen' and datname = current_database()`,
    );
    await waitFor(async () => loads.full > fullBefore, 15_000);
    expect((await get(proxy.url, a.id)).status).toBe(200);
    // And it follows the feed again afterwards.
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ healthStatus: "unhealthy" })
      .where(eq(deploymentLocations.id, a.ups[0]?.name ?? ""));
    await waitFor(async () => (await get(proxy.url, a.id)).status === 503, 15_000);
  });

  it("reads CPU readings of the table's deployments only, and nothing at all when no deployment uses least-CPU", async () => {
    await tdb.handle.db.delete(deploymentRouting); // only this test's deployments from here on
    const rr = await deploy("round-robin", ["one", "two", "three"]);
    const clock = fakeClock();
    const { proxy, loads } = await start({ clock, refreshMs: 20, fullRefreshMs: 600_000 });
    expect(proxy.table().deploymentCount).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // ~15 ticks
    expect(loads.readings).toEqual([]);
    expect(loads.deployments).toEqual([]);

    const a = await deploy("least-conn", ["one", "two"]);
    await waitFor(async () => (await get(proxy.url, a.id)).status === 200);
    await waitFor(async () => loads.readings.length >= 3);
    expect(new Set(loads.readings.flat())).toEqual(new Set([a.id]));
    // A reading sends no notification: the tick brings it in.
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ cpuUsage: 90, cpuUpdatedAt: clock.now() })
      .where(eq(deploymentLocations.id, a.ups[0]?.name ?? ""));
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ cpuUsage: 10, cpuUpdatedAt: clock.now() })
      .where(eq(deploymentLocations.id, a.ups[1]?.name ?? ""));
    await waitFor(async () => (await get(proxy.url, a.id)).body === a.ups[1]?.name);

    await tdb.handle.db.delete(deploymentRouting).where(eq(deploymentRouting.deploymentId, a.id));
    await waitFor(async () => proxy.table().deploymentCount === 0);
    const readsWhileFilled = loads.readings.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(loads.readings.length).toBe(readsWhileFilled);
    expect((await get(proxy.url, rr.id)).status).toBe(404);
  });
});
