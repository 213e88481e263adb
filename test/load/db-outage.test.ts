import postgres from "postgres";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { recordingLogger } from "../helpers/api-client.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { sleep, timedFetch } from "../helpers/load-stats.js";
import { type OwnCluster, ownClusterUnavailable, startOwnCluster } from "../helpers/own-cluster.js";
import { startReplica, type TestReplica } from "../helpers/replica.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// A database outage under traffic, on a PostgreSQL cluster of the test's own: Traefik-style pollers and API
// writers run while the database is stopped (20 s), then frozen (SIGSTOP). The service is never restarted.
const QUERY_TIMEOUT_MS = 1000;
const STOP_MS = 20_000;
const FREEZE_MS = 12_000;
const BOUND_MS = 15_000; // every wait and every request is bounded by this
const REFRESH_S = 2; // the change poll: it finds the outage and its end; NOTIFY carries writes faster
const unavailable = ownClusterUnavailable();

interface Poll {
  started: number;
  ms: number;
  status: number;
  stale: boolean;
  body: string;
}
interface Write {
  id: string;
  started: number;
  ms: number;
  status: number;
  code: unknown;
  retryAfter: string | null;
  contentType: string | null;
}

describe.skipIf(unavailable !== undefined)("the service through a database outage (own PostgreSQL cluster)", () => {
  let cluster: OwnCluster | undefined;
  let server: Running | undefined;
  let replica: TestReplica | undefined;
  let direct: postgres.Sql | undefined; // a second connection: the "other instance" and the test's eye on the rows
  const logger = recordingLogger();
  const figures: string[] = [];

  const base = () => server?.url ?? "";
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const getConfig = () =>
    timedFetch(`${base()}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } }, BOUND_MS);
  const readyz = () => timedFetch(`${base()}/readyz`, {}, BOUND_MS);
  const api = (method: string, path: string, body?: unknown) =>
    timedFetch(
      `${base()}/api/v1${path}`,
      { method, headers: admin, ...(body === undefined ? {} : { body: JSON.stringify(body) }) },
      BOUND_MS,
    );
  const sql = () => {
    if (!direct) {
      throw new Error("no direct connection");
    }
    return direct;
  };

  beforeAll(async () => {
    cluster = await startOwnCluster();
    replica = await startReplica("r1");
    server = await startServer(
      testConfig({
        DATABASE_URL: cluster.url,
        DB_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
        DB_CONNECT_TIMEOUT_SECONDS: "1",
        CONFIG_REFRESH_SECONDS: String(REFRESH_S),
        HEALTH_ENABLED: "true",
        HEALTH_RISE: "1",
        HEALTH_FALL: "1",
        HEALTH_INTERVAL_SECONDS: "1",
        FALLBACK_ENABLED: "true",
        PROXY_REFRESH_MS: "200",
      }),
      { logger, schedule: () => () => {} }, // probe rounds run when the test says so
    );
    direct = postgres(cluster.url, { max: 1, onnotice: () => {}, connect_timeout: 2 });
  }, 120_000);

  afterAll(async () => {
    cluster?.thaw();
    await server?.close();
    await replica?.close();
    await direct?.end({ timeout: 1 });
    await cluster?.destroy();
    console.log(`db-outage: ${figures.join("; ")}`);
    for (const e of logger.errors.slice(0, 5)) {
      const top = e.fields?.err as { cause?: unknown } | undefined;
      const err = (top?.cause ?? top) as { name?: string; code?: string; message?: string; stack?: string } | undefined;
      console.log(
        `db-outage: error logged: ${e.message} ${err?.name ?? ""} ${err?.code ?? ""} ${err?.message ?? ""} ${err?.stack?.split("\n").slice(0, 6).join(" / ") ?? JSON.stringify(e.fields)}`,
      );
    }
  }, 60_000);

  /** Pollers and writers until `stop()`: everything they got back, with when it was asked. */
  function traffic(tag: string) {
    const polls: Poll[] = [];
    const writes: Write[] = [];
    let live = true;
    const poller = async () => {
      while (live) {
        const started = Date.now();
        try {
          const r = await getConfig();
          polls.push({
            started,
            ms: r.ms,
            status: r.status,
            stale: r.headers.get("x-config-stale") === "true",
            body: r.text,
          });
        } catch {
          polls.push({ started, ms: Date.now() - started, status: 0, stale: false, body: "" });
        }
        await sleep(50);
      }
    };
    const writer = async (w: number) => {
      for (let n = 0; live; n++) {
        const id = `dep_${tag}_w${w}_${n}`;
        const started = Date.now();
        try {
          const r = await api("POST", "/deployments", { id, name: id });
          const code = r.headers.get("content-type")?.includes("json")
            ? (JSON.parse(r.text) as { code?: unknown }).code
            : undefined;
          writes.push({
            id,
            started,
            ms: r.ms,
            status: r.status,
            code,
            retryAfter: r.headers.get("retry-after"),
            contentType: r.headers.get("content-type"),
          });
        } catch {
          writes.push({
            id,
            started,
            ms: Date.now() - started,
            status: 0,
            code: undefined,
            retryAfter: null,
            contentType: null,
          });
        }
        await sleep(20);
      }
    };
    const loops = [poller(), poller(), poller(), poller(), writer(1), writer(2)];
    return {
      polls,
      writes,
      async stop() {
        live = false;
        await Promise.all(loops);
      },
    };
  }

  async function outage(kind: "stopped" | "frozen", ms: number): Promise<void> {
    const c = cluster;
    if (!c) {
      throw new Error("no cluster");
    }
    const before = await getConfig();
    expect(before.status).toBe(200);
    expect(before.headers.get("x-config-stale")).toBeNull();
    const t = traffic(kind);
    await sleep(1500); // writes acknowledged before the outage
    const down = Date.now();
    if (kind === "stopped") {
      await c.stop();
    } else {
      c.freeze();
    }
    await waitFor(async () => (await readyz()).status === 503, BOUND_MS);
    const notReady = Date.now();
    await sleep(Math.max(0, down + ms - Date.now()));
    const up = Date.now();
    if (kind === "stopped") {
      await c.start();
    } else {
      c.thaw();
    }
    await waitFor(async () => (await readyz()).status === 200, 30_000);
    const ready = Date.now();
    await sleep(1000);
    await t.stop();

    // Pollers: always 200; while the database was out, the last good config, marked stale.
    const shape = (p: Poll) => ({ status: p.status, stale: p.stale, same: p.body === before.text });
    expect(t.polls.filter((p) => p.status !== 200).map(shape)).toEqual([]);
    const pollsDuring = t.polls.filter((p) => p.started >= notReady && p.started + p.ms <= up);
    expect(pollsDuring.length).toBeGreaterThan(0);
    expect(pollsDuring.map(shape).filter((p) => !p.stale || !p.same)).toEqual([]);

    // Writers: 201, or 503 DATABASE_UNAVAILABLE + Retry-After as problem+json; never a hang, a 500 or a reset.
    const w503 = (w: Write) =>
      w.status === 503 &&
      w.code === "DATABASE_UNAVAILABLE" &&
      w.retryAfter !== null &&
      w.contentType === "application/problem+json";
    expect(t.writes.filter((w) => w.status !== 201 && !w503(w))).toEqual([]);
    const writesDuring = t.writes.filter((w) => w.started >= notReady && w.started + w.ms <= up);
    expect(writesDuring.length).toBeGreaterThan(0);
    expect(writesDuring.filter((w) => !w503(w))).toEqual([]);
    const slowest = Math.max(...t.writes.map((w) => w.ms));
    expect(slowest).toBeLessThan(BOUND_MS);

    // Nothing acknowledged is lost.
    const acked = t.writes.filter((w) => w.status === 201).map((w) => w.id);
    expect(
      acked.filter((id) => id.length > 0 && t.writes.find((w) => w.id === id && w.started < down)).length,
    ).toBeGreaterThan(0);
    const stored = new Set(
      (await sql()<{ id: string }[]>`select id from deployments where id = any(${acked})`).map((r) => r.id),
    );
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);

    const slowestDuring = Math.max(...writesDuring.map((w) => w.ms));
    figures.push(
      `${kind} ${Math.round(ms / 1000)}s: not ready after ${notReady - down}ms, ready ${ready - up}ms after restart, ` +
        `${t.polls.length} polls (${pollsDuring.length} stale, 0 errors), ${t.writes.length} writes ` +
        `(${acked.length} acked, all stored; ${writesDuring.length} answered 503 during, slowest ${slowestDuring}ms)`,
    );
  }

  /** Writes, NOTIFY, health checking and the fallback proxy's table work again, without a restart. */
  async function resumes(tag: string): Promise<void> {
    const s = server;
    const r1 = replica;
    if (!s || !r1) {
      throw new Error("not started");
    }
    // An API write (retried: the first ones after the restart may still meet the outage's 503).
    const answers: string[] = [];
    await waitFor(
      async () => {
        const r = await api("POST", "/deployments", { id: `dep_after_${tag}`, name: tag });
        answers.push(`${r.status} ${r.ms}ms ${r.text.slice(0, 200)}`);
        return r.status === 201 || (r.status === 409 && r.text.includes("DEPLOYMENT_EXISTS")); // an earlier try landed
      },
      BOUND_MS,
      200,
    ).catch((err: unknown) => {
      throw new Error(`no write succeeded: ${answers.slice(-3).join(" | ")}`, { cause: err });
    });

    // A write on another connection reaches the served config: through NOTIFY once the feed LISTENs again (the
    // change poll, every CONFIG_REFRESH_SECONDS, is the safety net; the figure says which one it was).
    const host = `notify-${tag}.example.com`;
    const wrote = Date.now();
    await sql().begin(async (tx) => {
      await tx`insert into deployments (id, name) values (${`dep_notify_${tag}`}, ${tag})`;
      await tx`insert into deployment_routing (id, deployment_id, domain, target_port, ssl_enabled, is_primary)
               values (${`rt_notify_${tag}`}, ${`dep_notify_${tag}`}, ${host}, 8080, false, true)`;
    });
    await waitFor(async () => (await getConfig()).text.includes(`Host(\`${host}\`)`), BOUND_MS, 10);
    const notifyMs = Date.now() - wrote;

    // A probe round records a transition, and the fallback proxy routes a least-conn deployment created now.
    const dep = `dep_lc_${tag}`;
    const domain = `lc-${tag}.example.com`;
    expect((await api("POST", "/deployments", { id: dep, name: dep })).status).toBe(201);
    expect(
      (
        await api("PUT", `/deployments/${dep}/routing`, {
          domain,
          target_port: r1.port,
          load_balancer_algo: "least-conn",
          ssl_enabled: false,
        })
      ).status,
    ).toBe(200);
    expect(
      (await api("PUT", `/deployments/${dep}/locations/${dep}_r1`, { address: "127.0.0.1", port: r1.port })).status,
    ).toBe(201);
    // Registered replicas are probed at once; then a round notices it failing, and the next one its recovery.
    const transitions = async () =>
      (
        JSON.parse((await api("GET", `/deployments/${dep}/locations/${dep}_r1/events`)).text) as {
          items: { to: string }[];
        }
      ).items.map((e) => e.to);
    await waitFor(async () => (await transitions()).includes("healthy"), BOUND_MS, 100);
    for (const [mode, to] of [
      ["fail", "unhealthy"],
      ["ok", "healthy"],
    ] as const) {
      const seen = (await transitions()).length;
      r1.mode = mode;
      await sleep(1100); // HEALTH_INTERVAL_SECONDS: the replica is due again
      await s.checker.runRound();
      await waitFor(
        async () => {
          const now = await transitions();
          return now.length > seen && now[0] === to; // newest first
        },
        BOUND_MS,
        100,
      );
    }

    const proxied = await waitFor(
      async () => {
        const cfg = JSON.parse((await getConfig()).text) as DynamicConfig;
        const router = Object.values(cfg.http?.routers ?? {}).find((r) => r.rule === `Host(\`${domain}\`)`);
        const url = cfg.http?.services[router?.service ?? ""]?.loadBalancer?.servers[0]?.url;
        const mw = cfg.http?.middlewares?.[router?.middlewares?.at(-1) ?? ""]?.headers?.customRequestHeaders;
        if (!url || url !== s.proxyUrl || !mw) {
          return false;
        }
        expect(traefikSchemaErrors(cfg)).toEqual([]);
        const r = await request(`${url}/`, { headers: { ...mw, host: domain } });
        const text = await r.body.text();
        return r.statusCode === 200 && text;
      },
      BOUND_MS,
      100,
    );
    expect(proxied).toBe("r1");
    figures.push(
      `after ${tag}: a write on another connection served in ${notifyMs}ms (change poll every ${REFRESH_S}s)`,
    );
  }

  it("stopped for 20 s: pollers get the last config marked stale, writes 503 + Retry-After; then everything resumes", async () => {
    await outage("stopped", STOP_MS);
    await resumes("stopped");
  }, 120_000);

  it("frozen (SIGSTOP): the same, within the query deadline; then everything resumes", async () => {
    await outage("frozen", FREEZE_MS);
    await resumes("frozen");
  }, 120_000);
});

if (unavailable !== undefined) {
  console.log(`db-outage: skipped (${unavailable})`);
}
