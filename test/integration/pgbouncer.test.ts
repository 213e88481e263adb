import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { createLogger } from "../../src/lib/logger.js";
import { type Running, startServer } from "../../src/server.js";
import { type ApiClient, httpClient } from "../helpers/api-client.js";
import { testConfig, waitFor } from "../helpers/app.js";
import { freePort, unprivilegedTempDir } from "../helpers/pg-cluster.js";
import { startReplica, type TestReplica } from "../helpers/replica.js";

// The service behind Debian's PgBouncer (1.18) in `pool_mode = transaction` on loopback, in front of the local
// server (DATABASE_URL): the pool goes through PgBouncer, LISTEN and the migration lock through a direct
// DATABASE_LISTEN_URL. PostgreSQL only: PGlite has no network server to pool (not applicable).

const BASE = process.env.DATABASE_URL;
const PGBOUNCER = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
})();
const skip = !BASE
  ? "needs DATABASE_URL (a PostgreSQL to pool)"
  : !PGBOUNCER
    ? "pgbouncer is not installed (apt-get install -y pgbouncer)"
    : undefined;
if (skip) {
  console.warn(`pgbouncer.test.ts skipped: ${skip}`);
}
const BOUND_MS = 15_000;
const YAML = { "content-type": "application/yaml" };
const ROUTE_OF = (domain: string) => `Host(\`${domain}\`)`;

interface Bouncer {
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/** PgBouncer in transaction mode for one database, trust auth, a small server pool (so sessions are shared). */
async function startBouncer(target: URL, dbName: string): Promise<Bouncer> {
  const dir = unprivilegedTempDir("obiente-pgbouncer-");
  const port = await freePort();
  const user = decodeURIComponent(target.username || "postgres");
  writeFileSync(join(dir, "users.txt"), `"${user}" ""\n`, { mode: 0o644 });
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `app = host=${target.hostname} port=${target.port || 5432} dbname=${dbName}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "users.txt")}`,
      "pool_mode = transaction",
      "default_pool_size = 4",
      "max_client_conn = 200",
      `logfile = ${join(dir, "pgbouncer.log")}`,
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  // PgBouncer refuses to run as root ("PgBouncer should not run as root"); -u switches to an unprivileged user.
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(
    PGBOUNCER as string,
    [...(asRoot ? ["-u", "postgres"] : []), join(dir, "pgbouncer.ini")],
    { stdio: "ignore" },
  );
  const url = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/app`;
  const probe = postgres(url, { max: 1, prepare: false, onnotice: () => {}, connect_timeout: 1 });
  try {
    await waitFor(() => probe`select 1 as ok`.then(() => true).catch(() => false), BOUND_MS, 100);
  } finally {
    await probe.end({ timeout: 1 });
  }
  const log = () => {
    try {
      return readFileSync(join(dir, "pgbouncer.log"), "utf8");
    } catch {
      return "";
    }
  };
  return {
    url,
    log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGINT"); // by its pid: only the bouncer this test started
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(skip !== undefined)(
  "behind PgBouncer in transaction mode (postgres only; PGlite: not applicable)",
  () => {
    let admin: postgres.Sql | undefined;
    let dbName = "";
    let direct = "";
    let bouncer: Bouncer | undefined;
    const servers: Running[] = [];
    const replicas: TestReplica[] = [];
    const lines: string[] = [];
    const logger = createLogger("debug", (line) => lines.push(line));
    const errorLines = () => lines.filter((l) => (JSON.parse(l) as { level?: string }).level === "error");

    const start = async (env: Record<string, string>) => {
      const running = await startServer(testConfig(env), { logger, schedule: () => () => {} });
      servers.push(running);
      return { running, api: httpClient(running.url) };
    };
    const serves = (api: ApiClient, domain: string) => api.routes(ROUTE_OF(domain));

    beforeAll(async () => {
      const base = new URL(BASE as string);
      dbName = `obiente_pgb_${randomBytes(6).toString("hex")}`;
      admin = postgres(base.toString(), { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database "${dbName}"`);
      const d = new URL(base);
      d.pathname = `/${dbName}`;
      direct = d.toString();
      bouncer = await startBouncer(base, dbName);
    }, 60_000);

    afterAll(async () => {
      for (const s of servers) {
        await s.close();
      }
      for (const r of replicas) {
        await r.close();
      }
      await bouncer?.stop();
      await admin?.unsafe(`drop database if exists "${dbName}" with (force)`);
      await admin?.end({ timeout: 1 });
    }, 60_000);

    describe("with DATABASE_LISTEN_URL (the supported setup)", () => {
      let a: ApiClient;
      let b: ApiClient;
      let ra: Running;
      let rb: Running;

      beforeAll(async () => {
        const env = {
          DATABASE_LISTEN_URL: direct,
          // No polling within the test: B learns of A's writes by NOTIFY only.
          CONFIG_REFRESH_SECONDS: "600",
          HEALTH_ENABLED: "true",
        };
        // Both start at once: the migration lock (a session advisory lock on the direct connection) serializes them.
        const [x, y] = await Promise.all([
          start({ ...env, DATABASE_URL: bouncer?.url ?? "", INSTANCE_ID: "pgb-a" }),
          start({ ...env, DATABASE_URL: bouncer?.url ?? "", INSTANCE_ID: "pgb-b" }),
        ]);
        ({ running: ra, api: a } = x);
        ({ running: rb, api: b } = y);
      }, 60_000);

      it("migrated through the pool and serves (the migration lock on the direct session)", async () => {
        expect(ra.handle.notifies).toBe(true);
        const check = postgres(direct, { max: 1, onnotice: () => {} });
        try {
          const applied = await check`select count(*)::int as n from drizzle.__drizzle_migrations`;
          expect(applied[0]?.n).toBeGreaterThan(0);
        } finally {
          await check.end({ timeout: 1 });
        }
        expect((await a.traefikDocument()) !== undefined).toBe(true);
      });

      it("takes concurrent API writes on both instances (sessions shared by PgBouncer between transactions)", async () => {
        const writes = Array.from({ length: 24 }, (_, i) =>
          (i % 2 === 0 ? a : b).post("/api/v1/deployments", { id: `dep_c${i}`, name: `c${i}` }),
        );
        const replies = await Promise.all(writes);
        expect(replies.map((r) => r.status)).toEqual(replies.map(() => 201));
        const list = await a.get<{ items: unknown[] }>("/api/v1/deployments?limit=100");
        expect(list.status).toBe(200);
        expect(a.faults).toEqual([]);
        expect(b.faults).toEqual([]);
      });

      it("a route written through A is served by B (NOTIFY over the direct session)", async () => {
        expect((await a.post("/api/v1/deployments", { id: "dep_web", name: "web" })).status).toBe(201);
        const put = await a.put("/api/v1/deployments/dep_web/routing", {
          domain: "web.example.com",
          target_port: 8080,
        });
        expect(put.status).toBe(200);
        await waitFor(() => serves(b, "web.example.com"), BOUND_MS);
      });

      it("health leases: the two instances probe each replica once per round between them", async () => {
        expect((await a.post("/api/v1/deployments", { id: "dep_probe", name: "probe" })).status).toBe(201);
        for (let i = 0; i < 4; i++) {
          const r = await startReplica(`p${i}`);
          replicas.push(r);
          const put = await a.put(`/api/v1/deployments/dep_probe/locations/probe_${i}`, {
            address: "127.0.0.1",
            port: r.port,
          });
          expect(put.status).toBeLessThan(300);
        }
        // Registering probed each replica once already; make them all due again and run one round on each instance.
        await waitFor(async () => replicas.every((r) => r.healthHits > 0), BOUND_MS);
        const check = postgres(direct, { max: 1, onnotice: () => {} });
        try {
          await check`update deployment_locations set next_probe_at = null where deployment_id = 'dep_probe'`;
        } finally {
          await check.end({ timeout: 1 });
        }
        const before = replicas.map((r) => r.healthHits);
        const [x, y] = await Promise.all([ra.checker.runRound(), rb.checker.runRound()]);
        expect((x?.probed ?? 0) + (y?.probed ?? 0)).toBe(4);
        expect(replicas.map((r, i) => r.healthHits - (before[i] ?? 0))).toEqual([1, 1, 1, 1]);
      });

      it("applies a state document (its advisory lock is transaction-scoped) and B serves it", async () => {
        const doc = [
          "version: 1",
          "deployments:",
          "  - id: dep_state",
          "    name: State",
          "    routing:",
          "      target_port: 8080",
          "      domains:",
          "        - domain: state.example.com",
          "",
        ].join("\n");
        const r = await a.send("POST", "/api/v1/state/apply", { raw: doc, headers: YAML });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ applied: true });
        await waitFor(() => serves(b, "state.example.com"), BOUND_MS);
      });

      it("logged no error, and PgBouncer refused nothing", () => {
        expect(errorLines()).toEqual([]);
        expect(bouncer?.log() ?? "").not.toMatch(
          /unsupported startup parameter|prepared statement .* (does not|already) exist/,
        );
      });
    });

    describe("without DATABASE_LISTEN_URL", () => {
      it("DATABASE_POOL_MODE=transaction: no LISTEN (it would hear nothing), a warning, and polling catches up", async () => {
        const before = lines.length;
        const { running, api } = await start({ DATABASE_URL: bouncer?.url ?? "", DATABASE_POOL_MODE: "transaction" });
        expect(running.handle.notifies).toBe(false);
        expect(lines.slice(before).some((l) => l.includes("DATABASE_LISTEN_URL is unset"))).toBe(true);
        // A second instance starting on the same database: the migration lock (transaction-scoped here) was released.
        const again = await start({ DATABASE_URL: bouncer?.url ?? "", DATABASE_POOL_MODE: "transaction" });
        await (admin as postgres.Sql).unsafe(`select 1`); // the shared server is fine
        const w = await again.api.post("/api/v1/deployments", { id: "dep_polled", name: "polled" });
        expect(w.status).toBe(201);
        expect(
          (
            await again.api.put("/api/v1/deployments/dep_polled/routing", {
              domain: "polled.example.com",
              target_port: 80,
            })
          ).status,
        ).toBe(200);
        await waitFor(() => serves(api, "polled.example.com"), BOUND_MS); // CONFIG_REFRESH_SECONDS (0.2 in tests)
        expect(errorLines()).toEqual([]);
      });

      it("what the settings prevent: LISTEN through the pooler hears nothing; session parameters are refused", async () => {
        const pooled = postgres(bouncer?.url ?? "", { max: 1, prepare: false, onnotice: () => {} });
        const heard: string[] = [];
        try {
          await pooled.listen("obiente_pgb_probe", (x) => heard.push(x)); // PgBouncer answers LISTEN…
          const notifier = postgres(direct, { max: 1, onnotice: () => {} });
          await notifier`select pg_notify('obiente_pgb_probe', 'hello')`;
          await notifier.end({ timeout: 1 });
          await new Promise((r) => setTimeout(r, 500));
          expect(heard).toEqual([]); // …but the server session went back to the pool: nothing arrives
        } finally {
          await pooled.end({ timeout: 1 });
        }
        // DATABASE_URL through PgBouncer, pool mode left at session: startup fails (PgBouncer refuses statement_timeout),
        // naming the fix.
        const misconfigured = await openDb({
          DATABASE_URL: bouncer?.url ?? "",
          DATA_DIR: "",
          DATABASE_POOL_MODE: "session",
        });
        try {
          await expect(migrate(misconfigured)).rejects.toThrow(
            /looks like PgBouncer in transaction mode. Set DATABASE_LISTEN_URL/,
          );
        } finally {
          await misconfigured.close();
        }
      });
    });
  },
);
