import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { clusterUnavailable, type PgCluster, startCluster } from "../helpers/pg-cluster.js";

// A frozen PostgreSQL (SIGSTOP: the kernel still accepts connections and bytes, nothing answers) on a cluster of
// our own, in a temp folder on a free port: the machine's server is never touched. PostgreSQL only by nature.
const BOUND_MS = 15_000; // every wait is bounded by this

async function call(url: string, init: RequestInit = {}) {
  // Bounded: a request that hangs for the whole freeze fails the test instead of stalling it.
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(BOUND_MS) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

describe.skipIf(clusterUnavailable !== undefined)("a frozen PostgreSQL (SIGSTOP) on a cluster of our own", () => {
  let cluster: PgCluster | undefined;
  let server: Running | undefined;
  let frozen = false;

  beforeAll(async () => {
    cluster = await startCluster("obiente-frozen-pg-");
    server = await startServer(
      testConfig({
        DATABASE_URL: cluster.url,
        DB_QUERY_TIMEOUT_MS: "1500",
        DB_CONNECT_TIMEOUT_SECONDS: "1",
        CONFIG_REFRESH_SECONDS: "0.3",
      }),
    );
    const created = await call(`${server.url}/api/v1/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "dep_before", name: "before" }),
    });
    expect(created.status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    if (frozen) {
      cluster?.signal("SIGCONT");
    }
    await server?.close();
    cluster?.destroy();
  }, 60_000);

  it("reports not ready, serves the last config marked stale and answers writes 503 + Retry-After, then recovers on its own", async () => {
    const url = server?.url as string;
    const write = (id: string) =>
      call(`${url}/api/v1/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ id, name: id }),
      });
    const config = () => call(`${url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    expect((await call(`${url}/readyz`)).status).toBe(200);
    expect((await config()).headers.get("x-config-stale")).toBeNull();

    cluster?.signal("SIGSTOP");
    frozen = true;

    const w = await write("dep_frozen");
    expect(w.status).toBe(503);
    expect(w.headers.get("content-type")).toBe("application/problem+json");
    expect(w.headers.get("retry-after")).toBe("5");
    expect(JSON.parse(w.text)).toMatchObject({ status: 503, code: "DATABASE_UNAVAILABLE" });
    expect(
      (await call(`${url}/api/v1/deployments/dep_before`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))
        .status,
    ).toBe(503);
    const notReady = await waitFor(async () => {
      const r = await call(`${url}/readyz`);
      return r.status === 503 && r;
    }, BOUND_MS);
    expect(JSON.parse(notReady.text)).toMatchObject({ status: "not-ready", stale: true });
    const stale = await config();
    expect(stale.status).toBe(200); // the last good config keeps Traefik routing
    expect(stale.headers.get("x-config-stale")).toBe("true");

    cluster?.signal("SIGCONT");
    frozen = false;

    await waitFor(async () => (await call(`${url}/readyz`)).status === 200, BOUND_MS);
    const fresh = await config();
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("x-config-stale")).toBeNull();
    const after = await waitFor(async () => {
      const r = await write("dep_after");
      return r.status === 201 && r;
    }, BOUND_MS);
    expect(JSON.parse(after.text)).toMatchObject({ id: "dep_after" });
  }, 120_000);
});
