import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSessionListener } from "../../src/db/listener.js";
import { createLogger } from "../../src/lib/logger.js";
import { type Running, startServer } from "../../src/server.js";
import { type ApiClient, httpClient } from "../helpers/api-client.js";
import { testConfig, waitFor } from "../helpers/app.js";
import { clusterUnavailable, type PgCluster, startCluster } from "../helpers/pg-cluster.js";

// PostgreSQL stopped and started again under a running service: what a Patroni failover to the same address (a
// VIP, or HAProxy in front) looks like from here. PostgreSQL only (PGlite runs in-process: there is no server to
// lose). A cluster of our own, never the machine's shared server.
//
// To know for certain that a write was made while the service was disconnected, the service logs in as a role of
// its own, `router`, which is set NOLOGIN before the restart (sessions already open are not affected): after the
// restart nothing of the service can connect until LOGIN is given back, whatever its backoff does meanwhile.
const BOUND_MS = 20_000;

const ROUTE_OF = (domain: string) => `Host(\`${domain}\`)`;

describe.skipIf(clusterUnavailable !== undefined)("PostgreSQL restarted under a running service (failover)", () => {
  let cluster: PgCluster | undefined;
  let admin: postgres.Sql | undefined;
  let server: Running | undefined;
  let api: ApiClient;
  const lines: string[] = [];
  const logged = (msg: string) => lines.filter((l) => (JSON.parse(l) as { msg?: string }).msg?.includes(msg));

  beforeAll(async () => {
    cluster = await startCluster("obiente-failover-pg-");
    admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    await admin.unsafe("create role router login superuser");
    const url = new URL(cluster.url);
    url.username = "router";
    server = await startServer(
      testConfig({
        DATABASE_URL: url.toString(),
        DB_QUERY_TIMEOUT_MS: "1500",
        DB_CONNECT_TIMEOUT_SECONDS: "1",
        // No polling within the test: a change reaches the served config by NOTIFY or by the reconnect's refresh.
        CONFIG_REFRESH_SECONDS: "600",
      }),
      { logger: createLogger("debug", (line) => lines.push(line)) },
    );
    api = httpClient(server.url);
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    await admin?.end({ timeout: 1 });
    cluster?.destroy();
  }, 60_000);

  /** A deployment and its route, written by hand as another tool or instance would (the triggers NOTIFY). */
  const handWrite = async (id: string, domain: string) => {
    const sql = admin as postgres.Sql;
    await sql.begin(async (tx) => {
      await tx`insert into deployments (id, name) values (${id}, ${id})`;
      await tx`insert into deployment_routing (id, deployment_id, domain, target_port)
               values (${`rt_${id}`}, ${id}, ${domain}, 80)`;
    });
  };
  const serves = (domain: string) => api.routes(ROUTE_OF(domain));

  it("re-LISTENs after the restart, refreshes in full (a write made while it was away is served) and takes writes again", async () => {
    const sql = admin as postgres.Sql;
    expect((await api.post("/api/v1/deployments", { id: "dep_before", name: "before" })).status).toBe(201);
    await handWrite("dep_notified", "notified.example.com");
    await waitFor(() => serves("notified.example.com"), BOUND_MS); // NOTIFY works before the outage

    await sql.unsafe("alter role router nologin");
    cluster?.stop();
    await waitFor(async () => logged("LISTEN connection lost").length > 0, BOUND_MS);
    const during = await api.post("/api/v1/deployments", { id: "dep_during", name: "during" });
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ code: "DATABASE_UNAVAILABLE" });

    cluster?.start();
    // `admin` reconnects on its own. The service cannot: no session of `router` exists while the write is made.
    await handWrite("dep_away", "away.example.com");
    expect((await sql`select count(*)::int as n from pg_stat_activity where usename = 'router'`)[0]?.n).toBe(0);
    expect(await serves("away.example.com")).toBe(false);

    await sql.unsafe("alter role router login");
    await waitFor(() => serves("away.example.com"), BOUND_MS); // the reconnect's full refresh, not a notification
    expect(logged("LISTEN re-established; full refresh")).toHaveLength(1);

    await handWrite("dep_after", "after.example.com");
    await waitFor(() => serves("after.example.com"), BOUND_MS); // NOTIFY on the new session

    // The pool needs no restart either: new queries get new connections.
    const after = await waitFor(async () => {
      const r = await api.post("/api/v1/deployments", { id: "dep_after_api", name: "after" });
      return r.status === 201 && r;
    }, BOUND_MS);
    expect(after.body).toMatchObject({ id: "dep_after_api" });
    expect((await api.get("/api/v1/deployments/dep_before")).status).toBe(200); // nothing acknowledged was lost

    // One line per state change, not one per reconnect attempt; nothing unhandled.
    expect(logged("LISTEN connection lost")).toHaveLength(1);
    expect(lines.filter((l) => (JSON.parse(l) as { level?: string }).level === "error")).toEqual([]);
    expect(api.faults.filter((f) => !f.includes("→ 503"))).toEqual([]);
  }, 120_000);

  it("a LISTEN session on a frozen server (no FIN, no RST) is found dead by its ping, and comes back after the thaw", async () => {
    const events: string[] = [];
    const listener = createSessionListener({
      url: cluster?.url ?? "",
      options: { onnotice: () => {}, connect_timeout: 1 },
      queryMs: 500,
      pingMs: 200,
    });
    const notify = async (payload: string) => {
      await (admin as postgres.Sql)`select pg_notify('obiente_ping_probe', ${payload})`;
    };
    let frozen = false;
    try {
      const unlisten = await listener.listen("obiente_ping_probe", {
        onNotify: () => events.push("notify"),
        onConnect: () => events.push("connect"),
        onDisconnect: () => events.push("disconnect"),
      });
      await notify("one");
      await waitFor(async () => events.includes("notify"), BOUND_MS);

      cluster?.signal("SIGSTOP");
      frozen = true;
      await waitFor(async () => events.includes("disconnect"), BOUND_MS);
      cluster?.signal("SIGCONT");
      frozen = false;
      await waitFor(async () => events.filter((e) => e === "connect").length === 2, BOUND_MS);
      await notify("two");
      await waitFor(async () => events.filter((e) => e === "notify").length === 2, BOUND_MS);
      expect(events).toEqual(["connect", "notify", "disconnect", "connect", "notify"]);

      await unlisten(); // after a reconnect too, unsubscribing stops the notifications
      await notify("three");
      await new Promise((r) => setTimeout(r, 300));
      expect(events.filter((e) => e === "notify")).toHaveLength(2);
    } finally {
      if (frozen) {
        cluster?.signal("SIGCONT");
      }
      await listener.close();
    }
  }, 60_000);
});
