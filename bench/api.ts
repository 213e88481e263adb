/**
 * API benchmark on PostgreSQL: the real server (startServer) on a throwaway database, driven over loopback.
 *
 *  1. Writes: 16 clients create 0 → 10k deployments through /api/v1 (POST deployment, PUT routing, 2 × PUT
 *     location each), with the rate and p50/p99 per 1,000 deployments.
 *  2. Polls: 50 Traefik-style pollers (gzip, Go's User-Agent, one keep-alive connection each, every 200 ms) at 10k
 *     deployments, without writes and then with ~1 write/s through the API.
 *  3. Idle: the server's CPU with no traffic at all at 10k.
 *
 * The server runs in a child process (this same file, forked with --serve) so that the load generator does not
 * share its event loop and its CPU can be told apart from the clients'. The health checker is off (the replica
 * addresses are made up and must never be dialled); a stand-in marks new replicas healthy once a second with one
 * UPDATE, as a checker in another instance would, so the served config has real servers, not placeholders.
 *
 * A report, not a test: a missed target still exits 0; a broken bench exits 1. About 4–5 minutes; --quick (2k
 * deployments, 10 s poll phases) about 1.5. Flags: --quick, --cpu-prof (the server profiles each phase, the bench
 * prints where its time went), --no-proxy (fallback proxy off; it is on by default, as in production).
 * PostgreSQL: BENCH_DATABASE_URL or DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); the bench
 * creates bench_api_<pid> there and drops it at the end, on failure too.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver, performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import postgres from "postgres";
import { Client, Pool } from "undici";
import { loadConfig } from "../src/config/env.js";
import type { Running } from "../src/server.js";
import { startServer } from "../src/server.js";
import { type CpuProfile, PhaseProfiler, summarizeProfile } from "./api-profile.js";
import { procCpuUs, table } from "./report.js";

const SERVE_FLAG = "--serve";
const ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123";
const PROVIDER_TOKEN = "bench-provider-token-0123456789abcdef";

interface Plan {
  name: string;
  deployments: number;
  /** The API phase stops taking new deployments after this; the rest is inserted with SQL (reported as such). */
  writeCapS: number;
  /** When the cap stopped the API phase early: how long the same writers then run at the full size. */
  burstS: number;
  pollPhaseS: number;
  idleS: number;
}

const FULL: Plan = { name: "full", deployments: 10_000, writeCapS: 165, burstS: 20, pollPhaseS: 30, idleS: 10 };
const QUICK: Plan = { name: "quick", deployments: 2_000, writeCapS: 40, burstS: 8, pollPhaseS: 10, idleS: 5 };

const WRITERS = 16;
const BUCKET = 1_000;
const POLLERS = 50;
const POLL_PAUSE_MS = 200;
const WRITE_EVERY_MS = 1_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** More failed API writes than this share of the phase is a broken run, not a figure. */
const MAX_ERROR_SHARE = 0.05;

const TARGET = { writeRate: 200, writeP99: 100, pollP99: 50, idleCpu: 2 };

// ── Small helpers (the house style of bench/render.ts) ──────────────────────────────────────────

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");
const fmtBytes = (n: number) => (n >= 1024 * 1024 ? `${fmt(n / (1024 * 1024))} MB` : `${fmt(n / 1024)} KB`);
const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
const loads = () =>
  loadavg()
    .map((l) => fmt(l, 2))
    .join(" ");
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ── Synthetic platform: the same ids whether a deployment came through the API or the SQL fill ─────

const depId = (i: number) => `dep_b${i.toString(36).padStart(5, "0")}`;
const domainOf = (i: number) => `d${i}.bench.example.com`;
/** A unique private address per replica (10.x.y.z, z in 1..250): never dialled (the checker is off). */
function addressOf(i: number, k: number): string {
  const n = i * 4 + k;
  return `10.${Math.floor(n / 62_500) % 256}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
}
const replicaBody = (i: number, k: number) => ({
  node_id: `node${(i + k) % 8}`,
  address: addressOf(i, k),
  port: 20_000 + ((i * 7 + k) % 40_000),
  status: "running",
});

// ── The server (child process) ──────────────────────────────────────────────────────────────────

interface CpuSample {
  /** process.cpuUsage() user + system, µs. */
  cpuUs: number;
  /** Time spent in GC since start (PerformanceObserver 'gc' entries), ms. */
  gcMs: number;
  heapUsed: number;
  rss: number;
  /** Event-loop delay since the previous sample (monitorEventLoopDelay), ms: how long the loop was blocked. */
  loopP99Ms: number;
  loopMaxMs: number;
}

type ToChild =
  | { type: "sample"; id: number }
  | { type: "profile-start"; id: number }
  | { type: "profile-stop"; id: number; file: string }
  | { type: "close"; id: number };
type FromChild =
  | { type: "ready"; url: string; proxyUrl: string | null }
  | { type: "failed"; error: string }
  | ({ type: "reply"; id: number } & Partial<CpuSample>);

async function runServer(databaseUrl: string, proxy: boolean): Promise<void> {
  const send = (msg: FromChild) => process.send?.(msg);
  const dataDir = mkdtempSync(join(tmpdir(), "obiente-bench-api-"));
  let gcMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
    }
  });
  gcObserver.observe({ entryTypes: ["gc"] });
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const profiler = new PhaseProfiler();
  let running: Running | undefined;
  try {
    // Production defaults, except: an ephemeral loopback port, known tokens, no active checker (see the header).
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl,
      ADMIN_TOKEN,
      PROVIDER_TOKEN,
      LOG_LEVEL: "error",
      HEALTH_ENABLED: "false",
      FALLBACK_ENABLED: proxy ? "true" : "false",
      PROXY_PORT: "0",
    });
    running = await startServer(config);
    send({ type: "ready", url: running.url, proxyUrl: running.proxyUrl ?? null });
  } catch (err) {
    send({ type: "failed", error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  }
  const server = running;
  process.on("message", (raw) => {
    const msg = raw as ToChild;
    const reply = (extra: Partial<CpuSample> = {}) => send({ type: "reply", id: msg.id, ...extra });
    void (async () => {
      switch (msg.type) {
        case "sample": {
          const cpu = process.cpuUsage();
          const mem = process.memoryUsage();
          reply({
            cpuUs: cpu.user + cpu.system,
            gcMs,
            heapUsed: mem.heapUsed,
            rss: mem.rss,
            loopP99Ms: loop.percentile(99) / 1e6,
            loopMaxMs: loop.max / 1e6,
          });
          loop.reset();
          return;
        }
        case "profile-start":
          await profiler.start();
          reply();
          return;
        case "profile-stop":
          await profiler.stop(msg.file);
          reply();
          return;
        case "close":
          profiler.close();
          gcObserver.disconnect();
          await server.close();
          rmSync(dataDir, { recursive: true, force: true });
          reply();
          process.disconnect?.();
          return;
      }
    })().catch((err: unknown) => {
      console.error("bench server:", err);
      process.exit(1);
    });
  });
  // The parent going away (crash, Ctrl-C) must not leave the server running.
  process.on("disconnect", () => setTimeout(() => process.exit(0), 100).unref());
}

/** Parent side: the forked server and a request/reply channel to it. */
class ServerProcess {
  private nextId = 1;
  private waiting = new Map<number, (msg: FromChild & { type: "reply" }) => void>();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly proxyUrl: string | null,
  ) {
    child.on("message", (raw) => {
      const msg = raw as FromChild;
      if (msg.type === "reply") {
        this.waiting.get(msg.id)?.(msg);
        this.waiting.delete(msg.id);
      }
    });
  }

  static async start(databaseUrl: string, proxy: boolean): Promise<ServerProcess> {
    const child = fork(fileURLToPath(import.meta.url), [SERVE_FLAG, databaseUrl, proxy ? "proxy" : "no-proxy"], {
      execArgv: process.execArgv.filter((a) => !a.startsWith("--cpu-prof")),
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    try {
      const ready = await new Promise<FromChild>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the bench server did not start within 60 s")), 60_000);
        child.once("message", (m) => {
          clearTimeout(timer);
          resolve(m as FromChild);
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`the bench server exited with ${code} before it was ready`));
        });
      });
      if (ready.type !== "ready") {
        throw new Error(`the bench server failed to start: ${ready.type === "failed" ? ready.error : ready.type}`);
      }
      return new ServerProcess(child, ready.url, ready.proxyUrl);
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  }

  private ask(msg: Omit<ToChild, "id"> & { type: ToChild["type"] }, timeoutMs = 30_000): Promise<Partial<CpuSample>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the bench server did not answer ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.child.send({ ...msg, id } as ToChild);
    });
  }

  async sample(): Promise<CpuSample> {
    const r = await this.ask({ type: "sample" });
    return {
      cpuUs: r.cpuUs ?? 0,
      gcMs: r.gcMs ?? 0,
      heapUsed: r.heapUsed ?? 0,
      rss: r.rss ?? 0,
      loopP99Ms: r.loopP99Ms ?? 0,
      loopMaxMs: r.loopMaxMs ?? 0,
    };
  }

  async profileStart(): Promise<void> {
    await this.ask({ type: "profile-start" });
  }

  async profileStop(file: string): Promise<void> {
    await this.ask({ type: "profile-stop", file } as Omit<ToChild, "id"> & { type: "profile-stop" }, 120_000);
  }

  /** Closes the server gracefully; kills it (this child, by its pid) if that takes longer than 20 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return;
    }
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    try {
      await this.ask({ type: "close" }, 20_000);
    } catch {
      this.child.kill("SIGKILL");
    }
    await Promise.race([exited, sleep(5_000).then(() => this.child.kill("SIGKILL"))]);
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}

// ── PostgreSQL: the throwaway database and its backends' CPU ────────────────────────────────────

interface BenchDb {
  name: string;
  url: string;
  version: string;
  /** The bench's own connection to the bench database (SQL fill, the health stand-in). */
  sql: postgres.Sql;
  /** CPU of this database's backends, µs, per backend pid (a backend that exited meanwhile drops out). */
  backendCpu(): Promise<Map<number, number> | undefined>;
  drop(): Promise<void>;
}

async function createBenchDb(base: string): Promise<BenchDb> {
  const name = `bench_api_${process.pid}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const local = ["127.0.0.1", "localhost", "::1", "[::1]"].includes(url.hostname);
  const sql = postgres(url.toString(), { max: 2, onnotice: () => {} });
  const [v] = await admin`select current_setting('server_version') as v`;
  let dropped = false;
  return {
    name,
    url: url.toString(),
    version: String(v?.v ?? "?"),
    sql,
    async backendCpu() {
      if (!local) {
        return undefined;
      }
      const rows = await admin`select pid from pg_stat_activity where datname = ${name}`;
      const out = new Map<number, number>();
      for (const r of rows) {
        const us = procCpuUs(Number(r.pid));
        if (us !== undefined) {
          out.set(Number(r.pid), us);
        }
      }
      return out;
    },
    async drop() {
      if (dropped) {
        return;
      }
      dropped = true;
      await sql.end({ timeout: 5 }).catch(() => {});
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}

/** CPU of the backends between two readings: only backends present in both count (µs). */
function backendDelta(a: Map<number, number> | undefined, b: Map<number, number> | undefined): number | undefined {
  if (!a || !b) {
    return undefined;
  }
  let us = 0;
  for (const [pid, end] of b) {
    us += end - (a.get(pid) ?? 0);
  }
  return us;
}

/**
 * The health checker's stand-in: replicas the API registered start `unknown` (served as nothing); a checker would
 * find them healthy at the first probe. One UPDATE a second does what its transitions would do to the rows.
 */
function startHealthStandIn(sql: postgres.Sql): { stop(): Promise<void>; marked(): number } {
  let stopped = false;
  let marked = 0;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      const rows = await sql`
        update deployment_locations
           set health_status = 'healthy', consecutive_successes = 1, last_check_at = now()
         where health_status = 'unknown' and status = 'running'
        returning id`;
      marked += rows.length;
      await sleep(1_000);
    }
  })().catch((err: unknown) => {
    failure = err; // reported by stop(): an unhandled rejection would skip the cleanup
  });
  return {
    async stop() {
      stopped = true;
      await loop;
      if (failure) {
        throw failure;
      }
    },
    marked: () => marked,
  };
}

/** Inserts deployments [from, to) as the API would have (primary route, 2 healthy replicas), in chunks of 500. */
async function fillWithSql(sql: postgres.Sql, from: number, to: number): Promise<void> {
  for (let start = from; start < to; start += 500) {
    const end = Math.min(to, start + 500);
    const deps: Record<string, string>[] = [];
    const routes: Record<string, string | number | boolean>[] = [];
    const replicas: Record<string, string | number>[] = [];
    for (let i = start; i < end; i++) {
      const id = depId(i);
      deps.push({ id, name: `bench ${i}` });
      routes.push({
        id: `rt_b${i.toString(36).padStart(5, "0")}`,
        deployment_id: id,
        domain: domainOf(i),
        path_prefix: "/",
        target_port: 3000 + (i % 4),
        is_primary: true,
      });
      for (const k of [0, 1]) {
        const r = replicaBody(i, k);
        replicas.push({
          id: `${id}-r${k}`,
          deployment_id: id,
          node_id: r.node_id,
          address: r.address,
          port: r.port,
          status: "running",
          health_status: "healthy",
        });
      }
    }
    await sql.begin(async (tx) => {
      await tx`insert into deployments ${tx(deps)}`;
      await tx`insert into deployment_routing ${tx(routes)}`;
      await tx`insert into deployment_locations ${tx(replicas)}`;
    });
  }
}

/** Commits and rollbacks so far on the bench database (every connection's, the bench's own included). */
async function pgXacts(sql: postgres.Sql): Promise<number> {
  const [r] = await sql`
    select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()`;
  return Number(r?.n ?? 0);
}

// ── Clients ─────────────────────────────────────────────────────────────────────────────────────

interface Answer {
  status: number;
  ms: number;
  bytes: number;
  headers: Record<string, string | string[] | undefined>;
  body?: Buffer;
}

type Dispatcher = Pool | Client;

async function send(
  d: Dispatcher,
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  headers: Record<string, string>,
  body?: unknown,
  keepBody = false,
): Promise<Answer> {
  const t0 = performance.now();
  const res = await d.request({
    method,
    path,
    headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
  let bytes = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) {
    bytes += (chunk as Buffer).length;
    if (keepBody || res.statusCode >= 400) {
      chunks.push(chunk as Buffer);
    }
  }
  const ms = performance.now() - t0;
  return {
    status: res.statusCode,
    ms,
    bytes,
    headers: res.headers,
    ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
  };
}

const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
/** What Traefik's HTTP provider sends (Go's client adds the gzip Accept-Encoding by itself). */
const POLL_HEADERS = {
  authorization: `Bearer ${PROVIDER_TOKEN}`,
  "accept-encoding": "gzip",
  "user-agent": "Go-http-client/1.1",
};

/** A 4xx from our own requests means the bench sends something wrong: stop, it is not a figure. */
class BenchBug extends Error {}

function checkAnswer(what: string, a: Answer, expected: number[]): boolean {
  if (expected.includes(a.status)) {
    return true;
  }
  const body = a.body?.toString("utf8").slice(0, 400) ?? "";
  if (a.status >= 400 && a.status < 500) {
    throw new BenchBug(`${what} answered ${a.status} (expected ${expected.join("/")}): ${body}`);
  }
  console.error(`  ${what} answered ${a.status}: ${body}`);
  return false;
}

// ── Phase 1: writes ─────────────────────────────────────────────────────────────────────────────

interface WriteSample {
  kind: string;
  ms: number;
  ok: boolean;
}

interface Bucket {
  from: number;
  to: number;
  samples: WriteSample[];
  startMs: number;
  endMs: number;
  serverCpuUs: number;
  serverGcMs: number;
  loop: string;
  pgCpuUs: number | undefined;
  renders: number | undefined;
  renderSec: number | undefined;
  load1: number;
}

interface RenderCounters {
  renders: number;
  seconds: number;
}

/** The server's own render counters from /metrics (open: no METRICS_TOKEN). */
async function renderCounters(pool: Pool): Promise<RenderCounters | undefined> {
  try {
    const a = await send(pool, "GET", "/metrics", {}, undefined, true);
    const text = a.body?.toString("utf8") ?? "";
    const ok = /^obiente_render_total\{result="ok"\} (\S+)$/m.exec(text);
    const sum = /^obiente_render_duration_seconds_sum (\S+)$/m.exec(text);
    return ok && sum ? { renders: Number(ok[1]), seconds: Number(sum[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Deployments [from, to) through the API, stopping after capS seconds. */
interface WriteRun {
  from: number;
  to: number;
  capS: number;
}

interface WritePhase {
  run: WriteRun;
  /** Deployments whose four requests all succeeded. */
  created: number;
  /** Deployments that exist (their POST succeeded). */
  posted: number;
  /** The first index not tried. */
  nextIndex: number;
  /** PostgreSQL transactions (commits + rollbacks, pg_stat_database) on the bench database during the phase. */
  pgXacts: number;
  buckets: Bucket[];
  samples: WriteSample[];
  wallMs: number;
  stoppedByCap: boolean;
  errors: number;
}

async function runWrites(run: WriteRun, server: ServerProcess, db: BenchDb, pool: Pool): Promise<WritePhase> {
  let next = run.from;
  let completed = 0;
  let posted = 0;
  let errors = 0;
  let requests = 0;
  const all: WriteSample[] = [];
  const buckets: Bucket[] = [];
  const t0 = performance.now();
  const deadline = t0 + run.capS * 1000;
  let stoppedByCap = false;

  let open: Bucket | undefined;
  let opening: Promise<void> = Promise.resolve();
  let lastCpu = await server.sample();
  let lastPg = await db.backendCpu();
  let lastRenders = await renderCounters(pool);
  const xacts0 = await pgXacts(db.sql);
  const openBucket = (from: number) => {
    open = {
      from,
      to: from + BUCKET,
      samples: [],
      startMs: performance.now(),
      endMs: 0,
      serverCpuUs: 0,
      serverGcMs: 0,
      loop: "",
      pgCpuUs: undefined,
      renders: undefined,
      renderSec: undefined,
      load1: 0,
    };
  };
  /** Closes the bucket once its last deployment completed: server CPU, PostgreSQL CPU and renders since the last. */
  const closeBucket = async (b: Bucket) => {
    b.endMs = performance.now();
    const [cpu, pg, renders] = await Promise.all([server.sample(), db.backendCpu(), renderCounters(pool)]);
    b.serverCpuUs = cpu.cpuUs - lastCpu.cpuUs;
    b.serverGcMs = cpu.gcMs - lastCpu.gcMs;
    b.loop = `${fmt(cpu.loopP99Ms, 0)} / ${fmt(cpu.loopMaxMs, 0)}`;
    b.pgCpuUs = backendDelta(lastPg, pg);
    if (renders && lastRenders) {
      b.renders = renders.renders - lastRenders.renders;
      b.renderSec = renders.seconds - lastRenders.seconds;
    }
    b.load1 = loadavg()[0] ?? 0;
    lastCpu = cpu;
    lastPg = pg;
    lastRenders = renders;
    buckets.push(b);
  };
  openBucket(run.from);

  const timed = async (kind: string, run: () => Promise<Answer>, expected: number[], what: string) => {
    let a: Answer;
    try {
      a = await run();
    } catch (err) {
      if (err instanceof BenchBug) {
        throw err;
      }
      errors++;
      all.push({ kind, ms: REQUEST_TIMEOUT_MS, ok: false });
      open?.samples.push({ kind, ms: REQUEST_TIMEOUT_MS, ok: false });
      console.error(`  ${what}: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    requests++;
    const ok = checkAnswer(what, a, expected);
    if (!ok) {
      errors++;
    }
    const s = { kind, ms: a.ms, ok };
    all.push(s);
    open?.samples.push(s);
    return ok;
  };

  const worker = async () => {
    for (;;) {
      if (next >= run.to) {
        return;
      }
      if (performance.now() > deadline) {
        stoppedByCap = true;
        return;
      }
      if (errors > 20 && errors > MAX_ERROR_SHARE * requests) {
        throw new Error(`too many failed writes (${errors} of ${requests}): the run is broken, not slow`);
      }
      const i = next++;
      const id = depId(i);
      // A failed step (5xx, timeout) leaves the rest of that deployment out: its next steps would only 404.
      const created = await timed(
        "POST deployment",
        () => send(pool, "POST", "/api/v1/deployments", ADMIN, { id, name: `bench ${i}` }),
        [201],
        `POST /deployments ${id}`,
      );
      if (!created) {
        continue;
      }
      posted++;
      const routed = await timed(
        "PUT routing",
        () =>
          send(pool, "PUT", `/api/v1/deployments/${id}/routing`, ADMIN, {
            domain: domainOf(i),
            target_port: 3000 + (i % 4),
          }),
        [200],
        `PUT routing ${id}`,
      );
      if (!routed) {
        continue;
      }
      for (const k of [0, 1]) {
        await timed(
          "PUT location",
          () => send(pool, "PUT", `/api/v1/deployments/${id}/locations/${id}-r${k}`, ADMIN, replicaBody(i, k)),
          [201],
          `PUT location ${id}-r${k}`,
        );
      }
      completed++;
      // Buckets close in completion order: the k-th deployment completed belongs to bucket floor(k / 1000).
      if (completed % BUCKET === 0 && open) {
        const done = open;
        openBucket(run.from + completed);
        opening = opening.then(() => closeBucket(done));
      }
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, worker));
  await opening;
  const wallMs = performance.now() - t0;
  if (open && (open as Bucket).samples.length > 0) {
    const last = open as Bucket;
    last.to = run.from + completed;
    await closeBucket(last);
  }
  // Statistics reach pg_stat_database when a backend's transaction ends or within a second: wait for them.
  await sleep(1_500);
  const pgXactsDone = (await pgXacts(db.sql)) - xacts0;
  return {
    run,
    created: completed,
    posted,
    nextIndex: next,
    pgXacts: pgXactsDone,
    buckets,
    samples: all,
    wallMs,
    stoppedByCap,
    errors,
  };
}

function printWrites(title: string, w: WritePhase): void {
  console.log(`${title}, ${WRITERS} clients (4 requests each: POST deployment, PUT routing, 2 × PUT location)`);
  console.log("");
  const rows = w.buckets.map((b) => {
    const secs = (b.endMs - b.startMs) / 1000;
    const ms = b.samples.map((s) => s.ms);
    const n = b.to - b.from;
    return [
      `${fmt(b.from / 1000, b.from % 1000 ? 1 : 0)}k–${fmt(b.to / 1000, b.to % 1000 ? 1 : 0)}k`,
      fmt(b.samples.length / secs),
      fmt(n / secs),
      fmt(percentile(ms, 50)),
      fmt(percentile(ms, 99)),
      fmt(Math.max(...ms)),
      `${fmt((b.serverCpuUs / 1e3 / (b.endMs - b.startMs)) * 100, 0)} %`,
      `${fmt((b.serverGcMs / (b.endMs - b.startMs)) * 100, 0)} %`,
      b.loop,
      b.pgCpuUs === undefined ? "-" : `${fmt((b.pgCpuUs / 1e3 / (b.endMs - b.startMs)) * 100, 0)} %`,
      b.renders === undefined ? "-" : String(b.renders),
      b.renders && b.renderSec !== undefined ? fmt((b.renderSec * 1000) / b.renders) : "-",
      String(b.samples.filter((s) => !s.ok).length),
      fmt(b.load1, 2),
    ];
  });
  console.log(
    table(
      [
        "deployments",
        "req/s",
        "dep/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU",
        "server GC",
        "loop p99/max ms",
        "PG CPU",
        "renders",
        "ms/render",
        "errors",
        "load 1m",
      ],
      rows,
    ),
  );
  console.log("");
  console.log(
    "Server and PG CPU: % of one core (the server process; this database's backends). Server GC: time in GC. " +
      "Loop: the server's event-loop delay (how long it was blocked) p99/max. Renders: from the server's /metrics.",
  );
  console.log("");
  const ms = w.samples.map((s) => s.ms);
  const rate = w.samples.length / (w.wallMs / 1000);
  const p99 = percentile(ms, 99);
  const rates = w.buckets
    .filter((b) => b.to - b.from >= BUCKET)
    .map((b) => b.samples.length / ((b.endMs - b.startMs) / 1000));
  const flat = rates.length >= 2 ? (rates[rates.length - 1] as number) / (rates[0] as number) : undefined;
  const worstP99 = Math.max(
    ...w.buckets.map((b) =>
      percentile(
        b.samples.map((s) => s.ms),
        99,
      ),
    ),
  );
  console.log(
    `${fmtInt(w.samples.length)} requests for ${fmtInt(w.created)} deployments in ${fmt(w.wallMs / 1000)} s: ` +
      `**${fmt(rate)} req/s** overall (target ≥ ${TARGET.writeRate}: ${verdict(rate >= TARGET.writeRate)}), ` +
      `p50 ${fmt(percentile(ms, 50))} ms, p99 ${fmt(p99)} ms, worst bucket p99 ${fmt(worstP99)} ms ` +
      `(target ≤ ${TARGET.writeP99}: ${verdict(worstP99 <= TARGET.writeP99)}); ` +
      (flat === undefined ? "" : `last full bucket's rate / first's: ${fmt(flat, 2)}; `) +
      `server CPU per request ${fmt(w.buckets.reduce((a, b) => a + b.serverCpuUs, 0) / 1000 / Math.max(1, w.samples.length))} ms ` +
      `(renders included); PostgreSQL transactions per request ${fmt(w.pgXacts / Math.max(1, w.samples.length))}; ` +
      `${w.errors} failed.`,
  );
  if (w.stoppedByCap) {
    console.log(
      `The API phase stopped at ${fmtInt(w.run.from + w.created)} deployments: its time cap (${w.run.capS} s) ran out.`,
    );
  }
  console.log("");
  const kinds = [...new Set(w.samples.map((s) => s.kind))];
  console.log(
    table(
      ["request", "count", "p50 ms", "p99 ms", "max ms"],
      kinds.map((k) => {
        const xs = w.samples.filter((s) => s.kind === k).map((s) => s.ms);
        return [k, fmtInt(xs.length), fmt(percentile(xs, 50)), fmt(percentile(xs, 99)), fmt(Math.max(...xs))];
      }),
    ),
  );
  console.log("");
}

// ── Phase 2: polls (with and without writes) ────────────────────────────────────────────────────

interface PollPhase {
  label: string;
  seconds: number;
  polls: number[];
  failed: number;
  hashes: Set<string>;
  bytes: number[];
  writes: WriteSample[];
  serverCpuUs: number;
  serverGcMs: number;
  loop: string;
  pgCpuUs: number | undefined;
  clientCpuUs: number;
  load1: number;
}

/** One write a second through the API, cycling: a route's port, a replica added, a replica failed, one removed. */
function startWriter(deployments: number): { stop(): Promise<WriteSample[]> } {
  const pool = new Pool(SERVER_URL(), { connections: 1 });
  const samples: WriteSample[] = [];
  let stopped = false;
  let added: number | undefined;
  let step = 0;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      const began = performance.now();
      const i = (step * 7919) % deployments; // a different deployment each step, spread over the whole platform
      const id = depId(i);
      const action = step % 4;
      let a: Answer | undefined;
      let kind = "";
      if (action === 0) {
        kind = "PUT routing (port)";
        a = await send(pool, "PUT", `/api/v1/deployments/${id}/routing`, ADMIN, { target_port: 4000 + (step % 1000) });
        checkAnswer(`PUT routing ${id}`, a, [200]);
      } else if (action === 1) {
        kind = "PUT location (new)";
        added = i;
        a = await send(pool, "PUT", `/api/v1/deployments/${id}/locations/${id}-r2`, ADMIN, replicaBody(i, 2));
        checkAnswer(`PUT location ${id}-r2`, a, [201, 200]);
      } else if (action === 2) {
        kind = "POST failure (health)";
        a = await send(pool, "POST", `/api/v1/deployments/${id}/locations/${id}-r0/failures`, ADMIN, {
          reason: "bench: connection refused",
        });
        checkAnswer(`POST failures ${id}-r0`, a, [202]);
      } else if (added !== undefined) {
        kind = "DELETE location";
        const gone = depId(added);
        a = await send(pool, "DELETE", `/api/v1/deployments/${gone}/locations/${gone}-r2`, ADMIN);
        checkAnswer(`DELETE location ${gone}-r2`, a, [204]);
        added = undefined;
      }
      if (a) {
        samples.push({ kind, ms: a.ms, ok: a.status < 400 });
      }
      step++;
      const wait = WRITE_EVERY_MS - (performance.now() - began);
      if (wait > 0 && !stopped) {
        await sleep(wait);
      }
    }
  })().catch((err: unknown) => {
    failure = err; // reported by stop(): an unhandled rejection would skip the cleanup
  });
  return {
    async stop() {
      stopped = true;
      await loop;
      await pool.close();
      if (failure) {
        throw failure;
      }
      return samples;
    },
  };
}

let serverUrl = "";
const SERVER_URL = () => serverUrl;

async function runPolls(
  label: string,
  seconds: number,
  withWrites: number | undefined,
  server: ServerProcess,
  db: BenchDb,
): Promise<PollPhase> {
  const clients = Array.from(
    { length: POLLERS },
    () => new Client(serverUrl, { pipelining: 1, keepAliveTimeout: 60_000 }),
  );
  const polls: number[] = [];
  const bytes: number[] = [];
  const hashes = new Set<string>();
  let failed = 0;
  const cpu0 = await server.sample();
  const pg0 = await db.backendCpu();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const writer = withWrites === undefined ? undefined : startWriter(withWrites);
  const poller = async (c: Client, n: number) => {
    await sleep((n / POLLERS) * POLL_PAUSE_MS); // spread the first polls over one pause: no lock-step
    while (performance.now() < deadline) {
      try {
        const a = await send(c, "GET", "/traefik/config", POLL_HEADERS);
        if (a.status === 200) {
          polls.push(a.ms);
          bytes.push(a.bytes);
          const h = a.headers["x-config-hash"];
          if (typeof h === "string") {
            hashes.add(h);
          }
        } else {
          failed++;
          checkAnswer("GET /traefik/config", a, [200]);
        }
      } catch (err) {
        if (err instanceof BenchBug) {
          throw err;
        }
        failed++;
      }
      await sleep(POLL_PAUSE_MS);
    }
  };
  await Promise.all(clients.map(poller));
  const writes = (await writer?.stop()) ?? [];
  const wallMs = performance.now() - t0;
  const [cpu1, pg1] = await Promise.all([server.sample(), db.backendCpu()]);
  const client1 = process.cpuUsage(client0);
  await Promise.all(clients.map((c) => c.close()));
  return {
    label,
    seconds: wallMs / 1000,
    polls,
    failed,
    hashes,
    bytes,
    writes,
    serverCpuUs: cpu1.cpuUs - cpu0.cpuUs,
    serverGcMs: cpu1.gcMs - cpu0.gcMs,
    loop: `${fmt(cpu1.loopP99Ms, 0)} / ${fmt(cpu1.loopMaxMs, 0)}`,
    pgCpuUs: backendDelta(pg0, pg1),
    clientCpuUs: client1.user + client1.system,
    load1: loadavg()[0] ?? 0,
  };
}

function printPolls(phases: PollPhase[]): void {
  console.log(
    `## Polls at the full platform: ${POLLERS} Traefik-style pollers (gzip, Go-http-client/1.1, one connection each, a poll then ${POLL_PAUSE_MS} ms pause)`,
  );
  console.log("");
  const pct = (us: number, secs: number) => `${fmt((us / 1e6 / secs) * 100, 0)} %`;
  console.log(
    table(
      [
        "phase",
        "polls",
        "polls/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "KB/poll",
        "failed",
        "hashes seen",
        "writes",
        "write p50 ms",
        "write p99 ms",
        "server CPU",
        "server GC",
        "loop p99/max ms",
        "PG CPU",
        "bench CPU",
        "load 1m",
      ],
      phases.map((p) => {
        const w = p.writes.map((s) => s.ms);
        return [
          p.label,
          fmtInt(p.polls.length),
          fmt(p.polls.length / p.seconds),
          fmt(percentile(p.polls, 50)),
          fmt(percentile(p.polls, 99)),
          fmt(Math.max(...p.polls)),
          fmt(percentile(p.bytes, 50) / 1024),
          String(p.failed),
          String(p.hashes.size),
          String(p.writes.length),
          w.length ? fmt(percentile(w, 50)) : "-",
          w.length ? fmt(percentile(w, 99)) : "-",
          pct(p.serverCpuUs, p.seconds),
          `${fmt((p.serverGcMs / 1000 / p.seconds) * 100, 0)} %`,
          p.loop,
          p.pgCpuUs === undefined ? "-" : pct(p.pgCpuUs, p.seconds),
          pct(p.clientCpuUs, p.seconds),
          fmt(p.load1, 2),
        ];
      }),
    ),
  );
  console.log("");
  for (const p of phases) {
    const p99 = percentile(p.polls, 99);
    console.log(
      `- ${p.label}: poll p99 ${fmt(p99)} ms (target ≤ ${TARGET.pollP99}: ${verdict(p99 <= TARGET.pollP99)})`,
    );
  }
  const withWrites = phases.find((p) => p.writes.length > 0);
  if (withWrites) {
    const kinds = [...new Set(withWrites.writes.map((s) => s.kind))];
    console.log(
      `- writes during "${withWrites.label}": ${kinds
        .map((k) => {
          const xs = withWrites.writes.filter((s) => s.kind === k).map((s) => s.ms);
          return `${k} ×${xs.length} p50 ${fmt(percentile(xs, 50))} ms, max ${fmt(Math.max(...xs))} ms`;
        })
        .join("; ")}. ` +
        "Each write changes the served bytes; a new replica turns healthy a second later (one more change), so " +
        "about 1.25 new configs a second are expected.",
    );
  }
  console.log("");
}

// ── Waiting for the served config to settle ─────────────────────────────────────────────────────

interface ConfigStats {
  deployments: number;
  unknown: number;
  hash: string;
  bytes: number;
  renderMs: number;
  revision: number;
}

async function configStats(pool: Pool): Promise<ConfigStats> {
  const a = await send(pool, "GET", "/api/v1/routing/stats", ADMIN, undefined, true);
  checkAnswer("GET /routing/stats", a, [200]);
  const s = JSON.parse(a.body?.toString("utf8") ?? "{}") as {
    deployments?: number;
    replicas?: Record<string, number>;
    config?: { hash: string; bytes: number; render_ms: number; revision: number } | null;
  };
  return {
    deployments: s.deployments ?? 0,
    unknown: s.replicas?.unknown ?? 0,
    hash: s.config?.hash ?? "",
    bytes: s.config?.bytes ?? 0,
    renderMs: s.config?.render_ms ?? 0,
    revision: s.config?.revision ?? 0,
  };
}

/** Until every deployment is in, no replica is unknown, and the served hash held still for 2 s (at most 120 s). */
async function settle(pool: Pool, deployments: number): Promise<ConfigStats> {
  const deadline = performance.now() + 120_000;
  let last: ConfigStats | undefined;
  let stillSince = performance.now();
  for (;;) {
    const s = await configStats(pool);
    if (!last || s.hash !== last.hash) {
      stillSince = performance.now();
    }
    last = s;
    if (s.deployments >= deployments && s.unknown === 0 && performance.now() - stillSince >= 2_000) {
      return s;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `the served config did not settle within 120 s (${s.deployments} deployments, ${s.unknown} unknown replicas)`,
      );
    }
    await sleep(500);
  }
}

// ── Main ────────────────────────────────────────────────────────────────────────────────────────

function printProfile(label: string, file: string): void {
  const summary = summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
  const busy = summary.byPlace.filter((p) => p.name !== "(idle)");
  const busyMs = busy.reduce((a, p) => a + p.ms, 0);
  console.log(
    `### Server CPU profile: ${label} (${fmt(busyMs / 1000)} s busy of ${fmt(summary.total / 1000)} s; ${file})`,
  );
  console.log("");
  const share = (ms: number) => `${fmt((ms / busyMs) * 100)} %`;
  console.log(
    table(
      ["where (self time, idle left out)", "ms", "share"],
      busy.slice(0, 12).map((p) => [p.name, fmtInt(p.ms), share(p.ms)]),
    ),
  );
  console.log("");
  console.log(
    table(
      ["function", "ms", "share"],
      summary.byFunction
        .filter((f) => f.name !== "(idle)")
        .slice(0, 15)
        .map((f) => [f.name, fmtInt(f.ms), share(f.ms)]),
    ),
  );
  console.log("");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const plan = args.includes("--quick") ? QUICK : FULL;
  const profile = args.includes("--cpu-prof");
  const proxy = !args.includes("--no-proxy");
  const base = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const started = performance.now();
  console.log(`# obiente-router API benchmark (${plan.name})`);
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, ${availableParallelism()} CPU(s), load average ${loads()} at start`,
  );

  const db = await createBenchDb(base);
  let server: ServerProcess | undefined;
  let pool: Pool | undefined;
  let standIn: ReturnType<typeof startHealthStandIn> | undefined;
  const onSignal = () => {
    // Ctrl-C: no figures, but neither a server nor a database left behind.
    server?.kill();
    void db.drop().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const profileDir = profile ? mkdtempSync(join(tmpdir(), "obiente-bench-api-prof-")) : "";
  try {
    server = await ServerProcess.start(db.url, proxy);
    serverUrl = server.url;
    console.log(
      `PostgreSQL ${db.version}, database ${db.name}; server ${server.url} in a child process (startServer, ` +
        `production defaults; health checker off, replicas marked healthy by a stand-in; fallback proxy ${proxy ? "on" : "off"})`,
    );
    console.log("");
    pool = new Pool(server.url, { connections: WRITERS, pipelining: 1, keepAliveTimeout: 60_000 });
    standIn = startHealthStandIn(db.sql);

    if (profile) {
      mkdirSync(profileDir, { recursive: true });
      await server.profileStart();
    }
    const writes = await runWrites({ from: 0, to: plan.deployments, capS: plan.writeCapS }, server, db, pool);
    if (profile) {
      await server.profileStop(join(profileDir, "writes.cpuprofile"));
    }
    printWrites(`## API writes: 0 → ${fmtInt(plan.deployments)} deployments`, writes);
    let expected = writes.posted;
    let burst: WritePhase | undefined;
    // Indices are handed out in order and every worker finishes the one it took: [0, next) were all tried.
    const next = writes.nextIndex;
    if (next < plan.deployments) {
      // The API did not get there in time: the rest goes in with SQL, then the same writers run at the full size,
      // so the rate and latency at 10k are measured either way.
      const t = performance.now();
      await fillWithSql(db.sql, next, plan.deployments);
      expected += plan.deployments - next;
      console.log(
        `The remaining ${fmtInt(plan.deployments - next)} deployments were inserted with SQL in ` +
          `${fmt((performance.now() - t) / 1000)} s (not timed as API writes); then ${plan.burstS} s of the same writes at that size:`,
      );
      console.log("");
      await settle(pool, expected);
      if (profile) {
        await server.profileStart();
      }
      burst = await runWrites(
        { from: plan.deployments, to: plan.deployments + 1_000_000, capS: plan.burstS },
        server,
        db,
        pool,
      );
      if (profile) {
        await server.profileStop(join(profileDir, "writes-at-full-size.cpuprofile"));
      }
      expected += burst.posted;
      printWrites(
        `## API writes at ${fmtInt(plan.deployments)} deployments (after the SQL fill), ${plan.burstS} s`,
        burst,
      );
    }
    const settled = await settle(pool, expected);
    const gz = await send(pool, "GET", "/traefik/config", POLL_HEADERS, undefined, true);
    checkAnswer("GET /traefik/config", gz, [200]);
    const doc = JSON.parse(gunzipSync(gz.body ?? Buffer.alloc(0)).toString("utf8")) as {
      http?: { routers?: Record<string, unknown>; services?: Record<string, unknown> };
    };
    const routers = Object.keys(doc.http?.routers ?? {}).length;
    const services = Object.keys(doc.http?.services ?? {}).length;
    const mem = await server.sample();
    console.log(
      `Served config at ${fmtInt(settled.deployments)} deployments: ${fmtBytes(settled.bytes)} identity, ` +
        `${fmtBytes(gz.bytes)} gzip, ${fmtInt(routers)} routers, ${fmtInt(services)} services, revision ` +
        `${settled.revision}, last render ${fmt(settled.renderMs)} ms; server heap ${fmtBytes(mem.heapUsed)}, ` +
        `RSS ${fmtBytes(mem.rss)}; load average ${loads()}`,
    );
    console.log("");

    const quiet = await runPolls("no writes", plan.pollPhaseS, undefined, server, db);
    if (profile) {
      await server.profileStart();
    }
    const busy = await runPolls("~1 write/s", plan.pollPhaseS, plan.deployments, server, db);
    if (profile) {
      await server.profileStop(join(profileDir, "polls-with-writes.cpuprofile"));
    }
    printPolls([quiet, busy]);

    // Idle: let the last write's re-render and the stand-in's follow-up finish, then measure nothing but the server.
    await standIn.stop();
    standIn = undefined;
    await settle(pool, expected);
    await pool.close();
    pool = undefined;
    const idle0 = await server.sample();
    const idleT0 = performance.now();
    await sleep(plan.idleS * 1000);
    const idle1 = await server.sample();
    const idleCpu = ((idle1.cpuUs - idle0.cpuUs) / 1e3 / (performance.now() - idleT0)) * 100;
    console.log(
      `## Idle at ${fmtInt(expected)} deployments (${plan.idleS} s, no requests, fallback proxy ${proxy ? "on" : "off"}, ` +
        `no least-CPU deployment): server CPU ${fmt(idleCpu)} % of a core (target ≤ ${TARGET.idleCpu} %: ${verdict(idleCpu <= TARGET.idleCpu)})`,
    );
    console.log("");

    if (profile) {
      printProfile(
        `write phase (0 → ${fmtInt(writes.created)} through the API)`,
        join(profileDir, "writes.cpuprofile"),
      );
      if (burst) {
        printProfile(
          `writes at ${fmtInt(plan.deployments)} deployments (${plan.burstS} s)`,
          join(profileDir, "writes-at-full-size.cpuprofile"),
        );
      }
      printProfile("polls with ~1 write/s", join(profileDir, "polls-with-writes.cpuprofile"));
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await standIn?.stop().catch(() => {});
    await pool?.close().catch(() => {});
    await server?.close().catch(() => server?.kill());
    await db.drop();
  }
  console.log(`bench finished in ${fmt((performance.now() - started) / 1000)} s; load average ${loads()} at end`);
}

if (process.argv[2] === SERVE_FLAG) {
  runServer(process.argv[3] ?? "", process.argv[4] === "proxy").catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
