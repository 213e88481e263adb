/**
 * Health-checking benchmark: 5,000 replica rows (50 deployments × 100 replicas) pointing at 8 small HTTP servers on
 * 127.0.0.1, probed by the real HealthChecker with the real HTTP probe. Each round is timed (wall and CPU) at the
 * default concurrency, with the heap and RSS after it.
 *
 * A report, not a test: it always exits 0 when a target is missed. Run with `npm run bench:health` (node --expose-gc,
 * so heap numbers are live data). PGlite in memory by default; with DATABASE_URL set it creates a fresh database on
 * that server and drops it at the end.
 *
 * The 8 replica servers run in a child process (this same file, forked with --replica-servers), so the CPU of this
 * process is the checker's own (plus PGlite's, which runs in-process), not the servers' answering the probes.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { count, eq, sql } from "drizzle-orm";
import postgres from "postgres";
import { deploymentLocations, deploymentRouting, deployments, locationHealthEvents } from "../schema/tables.js";
import { healthDefaults } from "../src/app-wiring.js";
import { loadConfig } from "../src/config/env.js";
import { type DbHandle, openDb, rowsOf } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";
import { type CheckDefaults, HealthChecker } from "../src/health/checker.js";
import { createHttpProbe } from "../src/health/http-probe.js";
import type { Probe } from "../src/health/probe.js";
import type { Clock } from "../src/lib/clock.js";
import { silentLogger } from "../src/lib/logger.js";
import { procCpuUs, table } from "./report.js";

const SERVERS = 8;
const DEPLOYMENTS = 50;
const REPLICAS_PER_DEPLOYMENT = 100;
const REPLICAS = DEPLOYMENTS * REPLICAS_PER_DEPLOYMENT;
const INSERT_CHUNK = 500;
const MEASURED_ROUNDS = 3;
const COMPARE_CONCURRENCY = 256;
const TARGET_ROUND_MS = 5_000;
/** The comparison round runs only when a steady round at the default concurrency took less than this. */
const COMPARE_IF_BELOW_MS = 10_000;
const REPLICA_SERVERS_FLAG = "--replica-servers";

// ── Replica servers (child process) ─────────────────────────────────────────────────────────────

type ToChild = { type: "stats" } | { type: "close" };
type FromChild = { type: "ready"; ports: number[] } | { type: "stats"; hits: number; cpuUs: number };

/** Child side: 8 servers answering GET /health with 200 and `{"cpu": n}`; keep-alive allowed (Node's default). */
async function runReplicaServers(): Promise<void> {
  const send = (msg: FromChild) => process.send?.(msg);
  let hits = 0;
  const servers: Server[] = [];
  for (let i = 0; i < SERVERS; i++) {
    const body = JSON.stringify({ cpu: 5 + i * 10 });
    const server = createServer((req, res) => {
      if (req.method === "GET" && req.url === "/health") {
        hits++;
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
  }
  const close = () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    process.disconnect?.();
  };
  process.on("message", (raw) => {
    const msg = raw as ToChild;
    if (msg.type === "stats") {
      const cpu = process.cpuUsage();
      send({ type: "stats", hits, cpuUs: cpu.user + cpu.system });
    } else if (msg.type === "close") {
      close();
    }
  });
  process.on("disconnect", () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });
  send({ type: "ready", ports: servers.map((s) => (s.address() as AddressInfo).port) });
}

interface ReplicaServers {
  ports: number[];
  pid: number | undefined;
  stats(): Promise<{ hits: number; cpuUs: number }>;
  close(): Promise<void>;
}

async function startReplicaServers(): Promise<ReplicaServers> {
  const child = fork(fileURLToPath(import.meta.url), [REPLICA_SERVERS_FLAG], {
    execArgv: process.execArgv.filter((a) => !a.startsWith("--cpu-prof")),
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = (type: FromChild["type"]) =>
    new Promise<FromChild>((resolve, reject) => {
      const onMessage = (raw: unknown) => {
        const msg = raw as FromChild;
        if (msg.type === type) {
          child.off("message", onMessage);
          child.off("exit", onExit);
          resolve(msg);
        }
      };
      const onExit = (code: number | null) => {
        child.off("message", onMessage);
        reject(new Error(`replica servers exited early (code ${code})`));
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  const ready = await next("ready");
  if (ready.type !== "ready") {
    throw new Error("replica servers did not start");
  }
  return {
    ports: ready.ports,
    pid: child.pid,
    async stats() {
      const reply = next("stats");
      child.send({ type: "stats" } satisfies ToChild);
      const msg = await reply;
      return msg.type === "stats" ? { hits: msg.hits, cpuUs: msg.cpuUs } : { hits: 0, cpuUs: 0 };
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.send({ type: "close" } satisfies ToChild);
      const timer = setTimeout(() => child.kill(), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ── Database ────────────────────────────────────────────────────────────────────────────────────

interface BenchDb {
  handle: DbHandle;
  label: string;
  /** CPU µs of the PostgreSQL backends serving the bench database (undefined: PGlite, or /proc not readable). */
  backendCpuUs(): Promise<number | undefined>;
  close(): Promise<void>;
}

async function openBenchDb(): Promise<BenchDb> {
  const base = process.env.DATABASE_URL;
  if (!base) {
    const handle = await openDb({ DATA_DIR: "", inMemory: true });
    const [v] = rowsOf<{ v: string }>(await handle.db.execute(sql`select current_setting('server_version') as v`));
    return {
      handle,
      label: `PGlite (in memory, in-process WASM), PostgreSQL ${v?.v ?? "?"}`,
      backendCpuUs: async () => undefined,
      close: () => handle.close(),
    };
  }
  const name = `obiente_bench_${randomBytes(6).toString("hex")}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const host = url.hostname;
  let handle: DbHandle | undefined;
  try {
    handle = await openDb({ DATABASE_URL: url.toString(), DATA_DIR: "" });
    const [v] = await admin`select current_setting('server_version') as v`;
    const local = host === "127.0.0.1" || host === "localhost" || host === "::1" || host === "[::1]";
    const opened = handle;
    return {
      handle,
      label: `PostgreSQL ${String(v?.v ?? "?")} at ${host}:${url.port || "5432"} (postgres-js), database ${name}`,
      async backendCpuUs() {
        if (!local) {
          return undefined;
        }
        const rows = await admin`select pid from pg_stat_activity where datname = ${name}`;
        let total = 0;
        for (const r of rows) {
          const us = procCpuUs(Number(r.pid));
          if (us === undefined) {
            return undefined;
          }
          total += us;
        }
        return total;
      },
      async close() {
        await opened.close();
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      },
    };
  } catch (err) {
    await handle?.close().catch(() => {});
    await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
    await admin.end();
    throw err;
  }
}

type NewDeployment = typeof deployments.$inferInsert;
type NewRouting = typeof deploymentRouting.$inferInsert;
type NewLocation = typeof deploymentLocations.$inferInsert;

async function seed(handle: DbHandle, ports: number[]): Promise<void> {
  const deps: NewDeployment[] = [];
  const routes: NewRouting[] = [];
  const locations: NewLocation[] = [];
  for (let i = 0; i < DEPLOYMENTS; i++) {
    const deploymentId = `dep_bench_${String(i).padStart(3, "0")}`;
    deps.push({ id: deploymentId, name: `bench ${i}` });
    routes.push({
      id: `rt_bench_${String(i).padStart(3, "0")}`,
      deploymentId,
      domain: `d${i}.bench.test`,
      targetPort: 1,
      isPrimary: true,
    });
    for (let k = 0; k < REPLICAS_PER_DEPLOYMENT; k++) {
      const n = i * REPLICAS_PER_DEPLOYMENT + k;
      locations.push({
        id: `loc_bench_${String(i).padStart(3, "0")}_${String(k).padStart(3, "0")}`,
        deploymentId,
        address: "127.0.0.1",
        port: ports[n % ports.length] ?? null,
        status: "running",
      });
    }
  }
  const { db } = handle;
  for (let i = 0; i < deps.length; i += INSERT_CHUNK) {
    await db.insert(deployments).values(deps.slice(i, i + INSERT_CHUNK));
  }
  for (let i = 0; i < routes.length; i += INSERT_CHUNK) {
    await db.insert(deploymentRouting).values(routes.slice(i, i + INSERT_CHUNK));
  }
  for (let i = 0; i < locations.length; i += INSERT_CHUNK) {
    await db.insert(deploymentLocations).values(locations.slice(i, i + INSERT_CHUNK));
  }
  await db.execute(sql`analyze`);
}

// ── Measuring ───────────────────────────────────────────────────────────────────────────────────

function collect(): void {
  if (globalThis.gc) {
    globalThis.gc();
    globalThis.gc();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const mb = (bytes: number) => bytes / (1024 * 1024);
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** Wraps the real probe to measure the time during which at least one probe is in flight. */
function timedProbe(inner: Probe): { probe: Probe; busyMs: () => number } {
  let inflight = 0;
  let busyStart = 0;
  let busy = 0;
  const probe: Probe = async (target) => {
    if (inflight === 0) {
      busyStart = performance.now();
    }
    inflight++;
    try {
      return await inner(target);
    } finally {
      inflight--;
      if (inflight === 0) {
        busy += performance.now() - busyStart;
      }
    }
  };
  return { probe, busyMs: () => busy };
}

interface RoundResult {
  label: string;
  concurrency: number;
  wallMs: number;
  checkerMs: number;
  probeMs: number;
  probed: number;
  failed: number;
  transitions: number;
  callbackTransitions: number;
  serverHits: number;
  cpuS: number;
  serversCpuS: number;
  dbCpuS: number | undefined;
  heapMb: number;
  externalMb: number;
  rssMb: number;
}

// ── Main ────────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const started = performance.now();
  console.log("# obiente-router health-check benchmark");
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPU(s), load average ${loadavg()
      .map((l) => fmt(l, 2))
      .join(" ")} at start, gc ${globalThis.gc ? "exposed" : "NOT exposed (heap numbers include garbage)"}`,
  );

  const servers = await startReplicaServers();
  let bench: BenchDb | undefined;
  let closeProbe: (() => Promise<void>) | undefined;
  let checkers: HealthChecker[] = [];
  try {
    bench = await openBenchDb();
    const { handle } = bench;
    console.log(`database: ${bench.label}`);
    const tSetup = performance.now();
    await migrate(handle);
    await seed(handle, servers.ports);
    const setupMs = performance.now() - tSetup;

    const defaults: CheckDefaults = healthDefaults(loadConfig({}));
    console.log(
      `${int(REPLICAS)} replicas (${DEPLOYMENTS} deployments × ${REPLICAS_PER_DEPLOYMENT}, 1 route each) on ${SERVERS} HTTP servers at 127.0.0.1:${servers.ports.join(",")} (child process)`,
    );
    console.log(
      `defaults: concurrency ${defaults.concurrency} (claims up to ${defaults.concurrency} ahead), timeout ${defaults.timeoutSeconds} s, interval ${defaults.intervalSeconds} s, path ${defaults.path}, expected ${defaults.expectedStatus}, rise ${defaults.rise}`,
    );
    console.log(`migrate + seed: ${fmt(setupMs / 1000, 2)} s`);
    console.log("");

    let t = Date.now();
    const clock: Clock = { now: () => new Date(t) };
    const http = createHttpProbe(clock);
    closeProbe = http.close;
    const { probe, busyMs } = timedProbe(http.probe);
    let seenTransitions = 0;
    const makeChecker = (concurrency: number) => {
      const checker = new HealthChecker({
        db: handle.db,
        probe,
        clock,
        logger: silentLogger,
        schedule: () => () => {},
        owner: "bench",
        defaults: { ...defaults, concurrency },
        onTransitions: (ts) => {
          seenTransitions += ts.length;
        },
      });
      checkers.push(checker);
      return checker;
    };

    const runOne = async (label: string, checker: HealthChecker, concurrency: number): Promise<RoundResult> => {
      t += defaults.intervalSeconds * 1000; // every replica is due again
      collect();
      const seenBefore = seenTransitions;
      const busyBefore = busyMs();
      const serversBefore = await servers.stats();
      const dbBefore = await bench?.backendCpuUs();
      const cpuBefore = process.cpuUsage();
      const t0 = performance.now();
      const summary = await checker.runRound();
      const wallMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpuBefore);
      const dbAfter = await bench?.backendCpuUs();
      const serversAfter = await servers.stats();
      collect();
      const mem = process.memoryUsage();
      return {
        label,
        concurrency,
        wallMs,
        checkerMs: summary.durationMs,
        probeMs: busyMs() - busyBefore,
        probed: summary.probed,
        failed: summary.failed,
        transitions: summary.transitions,
        callbackTransitions: seenTransitions - seenBefore,
        serverHits: serversAfter.hits - serversBefore.hits,
        cpuS: (cpu.user + cpu.system) / 1e6,
        serversCpuS: (serversAfter.cpuUs - serversBefore.cpuUs) / 1e6,
        dbCpuS: dbBefore === undefined || dbAfter === undefined ? undefined : (dbAfter - dbBefore) / 1e6,
        heapMb: mb(mem.heapUsed),
        externalMb: mb(mem.external),
        rssMb: mb(mem.rss),
      };
    };

    const checker = makeChecker(defaults.concurrency);
    const rounds: RoundResult[] = [await runOne("warm-up", checker, defaults.concurrency)];
    const [events] = await handle.db.select({ n: count() }).from(locationHealthEvents);
    for (let r = 1; r <= MEASURED_ROUNDS; r++) {
      rounds.push(await runOne(`steady ${r}`, checker, defaults.concurrency));
    }
    const warm = rounds[0];
    const steady = rounds.slice(1);
    const steadyMs = median(steady.map((r) => r.wallMs));
    let compare: RoundResult | undefined;
    if (steadyMs < COMPARE_IF_BELOW_MS) {
      compare = await runOne(`compare`, makeChecker(COMPARE_CONCURRENCY), COMPARE_CONCURRENCY);
      rounds.push(compare);
    }
    const [healthy] = await handle.db
      .select({ n: count() })
      .from(deploymentLocations)
      .where(eq(deploymentLocations.healthStatus, "healthy"));
    const [withCpu] = await handle.db
      .select({ n: count() })
      .from(deploymentLocations)
      .where(sql`${deploymentLocations.cpuUsage} is not null`);

    const showDb = rounds.some((r) => r.dbCpuS !== undefined);
    console.log("## Rounds");
    console.log("");
    console.log(
      table(
        [
          "round",
          "concurrency",
          "wall ms",
          "probe ms",
          "other ms",
          "probed",
          "failed",
          "probes/s",
          "CPU s",
          ...(showDb ? ["db CPU s"] : []),
          "servers CPU s",
          "transitions",
          "heap MB",
          "external MB",
          "RSS MB",
        ],
        rounds.map((r) => [
          r.label,
          String(r.concurrency),
          int(r.wallMs),
          int(r.probeMs),
          int(r.wallMs - r.probeMs),
          int(r.probed),
          int(r.failed),
          int(r.probed / (r.wallMs / 1000)),
          fmt(r.cpuS, 2),
          ...(showDb ? [r.dbCpuS === undefined ? "n/a" : fmt(r.dbCpuS, 2)] : []),
          fmt(r.serversCpuS, 2),
          int(r.transitions),
          fmt(r.heapMb),
          fmt(r.externalMb),
          fmt(r.rssMb),
        ]),
      ),
    );
    console.log("");
    const skew = Math.max(...rounds.map((r) => Math.abs(r.wallMs - r.checkerMs)));
    console.log(
      `wall = runRound() as seen by the caller (the checker's own durationMs differs by ≤ ${fmt(skew)} ms). probe ms = time with at`,
    );
    console.log(
      "least one HTTP probe in flight; other ms = the rest (claim queries, recordObservations transactions, scheduling).",
    );
    console.log(
      `CPU s = this process (user + system), which ${bench.handle.driver === "pglite" ? "includes PGlite (in-process WASM)" : "excludes the PostgreSQL server; db CPU s = the bench database's backends (from /proc)"}.`,
    );
    console.log(
      "servers CPU s = the child process with the 8 replica servers. heap MB = heapUsed after gc; external MB = off-heap",
    );
    console.log(
      `(Buffers${bench.handle.driver === "pglite" ? ", PGlite's WASM memory" : ""}); RSS MB = whole process.`,
    );
    console.log("");

    const verdict = (ms: number) => (ms <= TARGET_ROUND_MS ? "PASS" : "MISS");
    console.log("## Target: one round of 5,000 replicas ≤ 5 s at the default concurrency");
    console.log("");
    const targetRows: string[][] = [];
    if (warm) {
      targetRows.push([
        `warm-up (unknown → healthy, ${int(warm.transitions)} transitions written)`,
        String(warm.concurrency),
        int(warm.wallMs),
        `≤ ${int(TARGET_ROUND_MS)}`,
        verdict(warm.wallMs),
      ]);
    }
    targetRows.push([
      `steady (median of ${steady.length}, no transitions)`,
      String(defaults.concurrency),
      int(steadyMs),
      `≤ ${int(TARGET_ROUND_MS)}`,
      verdict(steadyMs),
    ]);
    if (compare) {
      targetRows.push([
        "steady, for comparison (not a target)",
        String(compare.concurrency),
        int(compare.wallMs),
        "-",
        "-",
      ]);
    }
    console.log(table(["round", "concurrency", "wall ms", "target ms", "time"], targetRows));
    console.log("");
    if (!compare) {
      console.log(
        `comparison round at concurrency ${COMPARE_CONCURRENCY} skipped: a steady round took ≥ ${int(COMPARE_IF_BELOW_MS)} ms`,
      );
      console.log("");
    }

    // Sanity: every round probed everything exactly once, and every probe reached a server.
    const problems: string[] = [];
    for (const r of rounds) {
      if (r.probed !== REPLICAS || r.failed !== 0 || r.serverHits !== REPLICAS) {
        problems.push(`${r.label}: probed ${r.probed}, failed ${r.failed}, server hits ${r.serverHits}`);
      }
      if (r.callbackTransitions !== r.transitions) {
        problems.push(`${r.label}: onTransitions saw ${r.callbackTransitions}, round reported ${r.transitions}`);
      }
    }
    if (warm && warm.transitions !== REPLICAS) {
      problems.push(`warm-up: ${warm.transitions} transitions, expected ${REPLICAS}`);
    }
    if (steady.some((r) => r.transitions !== 0)) {
      problems.push("a steady round recorded transitions");
    }
    console.log(
      `checks: health events after warm-up ${int(events?.n ?? 0)}, healthy replicas ${int(healthy?.n ?? 0)}, with cpu reading ${int(withCpu?.n ?? 0)}; ${problems.length === 0 ? "all rounds probed every replica once, 0 failures: OK" : `PROBLEMS: ${problems.join("; ")}`}`,
    );
    console.log(`peak RSS of this process: ${fmt(process.resourceUsage().maxRSS / 1024)} MB`);
  } finally {
    for (const c of checkers) {
      await c.stop();
    }
    checkers = [];
    await closeProbe?.();
    await servers.close();
    await bench?.close();
  }
  console.log(
    `bench finished in ${fmt((performance.now() - started) / 1000)} s; load average ${loadavg()
      .map((l) => fmt(l, 2))
      .join(" ")} at the end`,
  );
}

if (process.argv.includes(REPLICA_SERVERS_FLAG)) {
  runReplicaServers().catch((err: unknown) => {
    console.error("replica servers failed:", err);
    process.exit(1);
  });
} else {
  // A missed target is still exit 0 (this is a report, not a test); only a broken bench exits non-zero.
  main().catch((err: unknown) => {
    console.error("bench failed:", err);
    process.exitCode = 1;
  });
}
