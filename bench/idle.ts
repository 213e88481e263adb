/**
 * Idle CPU bench: the server process (API + bundled fallback proxy, wired by startServer as in production) on an
 * embedded PGlite DATA_DIR holding 10,000 deployments with 3 replicas each, no request and no write coming in. Each
 * case runs in a fresh child process (this file, forked with --child) so its CPU is the server's own, PGlite's
 * included (it runs in-process). After startup settles it samples process.cpuUsage() over the measured window and
 * prints user + system time as a share of one core.
 *
 * Cases: no least-CPU deployment (proxy on, and proxy off for reference), then 100 of the 10k switched to
 * `least-conn` (their replicas' CPU readings are what the proxy's PROXY_REFRESH_MS cadence reads). The health
 * checker is off (HEALTH_ENABLED=false): its probes are work, not idling.
 *
 * A report, not a test: it always exits 0. Run it with `node --import tsx bench/idle.ts`. To compare with another
 * checkout (e.g. `git archive HEAD | tar -x -C /tmp/before` with node_modules linked), pass `--tree /tmp/before`:
 * the children then run that tree's server on the same data. IDLE_SECONDS (default 15) and IDLE_SETTLE_SECONDS
 * (default 10) change the windows. Seeding takes a minute or more; IDLE_CACHE_DIR keeps the seeded folder there and
 * copies it on later runs.
 */
import { fork } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inArray } from "drizzle-orm";

const DEPLOYMENTS = 10_000;
const REPLICAS_PER_DEPLOYMENT = 3;
const LEAST_CPU = 100;
const CHUNK = 1000;
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS ?? 15);
const SETTLE_SECONDS = Number(process.env.IDLE_SETTLE_SECONDS ?? 10);
const CHILD_FLAG = "--child";

interface ChildResult {
  cpuPercent: number;
  startMs: number;
}

// ── Child: one server, idle ─────────────────────────────────────────────────────────────────────

async function runChild(dataDir: string, fallback: boolean): Promise<void> {
  // Relative to this file, so `--tree` runs that checkout's server.
  const { loadConfig } = await import("../src/config/env.js");
  const { startServer } = await import("../src/server.js");
  const { silentLogger } = await import("../src/lib/logger.js");
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: "0",
    PROXY_PORT: "0",
    HEALTH_ENABLED: "false",
    FALLBACK_ENABLED: String(fallback),
    LOG_LEVEL: "error",
  });
  const t0 = performance.now();
  const running = await startServer(config, { logger: silentLogger });
  const startMs = performance.now() - t0;
  await sleep(SETTLE_SECONDS * 1000);
  const before = process.cpuUsage();
  const wall0 = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const used = process.cpuUsage(before);
  const wallMs = performance.now() - wall0;
  const cpuPercent = ((used.user + used.system) / 1000 / wallMs) * 100;
  await running.close();
  const result: ChildResult = { cpuPercent, startMs };
  process.send?.(result);
}

// ── Parent: seed once, run each case in a child ─────────────────────────────────────────────────

async function seed(dataDir: string): Promise<void> {
  const { openDb } = await import("../src/db/client.js");
  const { migrate } = await import("../src/db/migrate.js");
  const { deploymentLocations, deploymentRouting, deployments } = await import("../schema/tables.js");
  const handle = await openDb({ DATA_DIR: dataDir });
  await migrate(handle);
  const now = new Date();
  for (let start = 0; start < DEPLOYMENTS; start += CHUNK) {
    const ids = Array.from({ length: Math.min(CHUNK, DEPLOYMENTS - start) }, (_, i) => start + i);
    await handle.db.transaction(async (tx) => {
      await tx.insert(deployments).values(ids.map((i) => ({ id: `dep_${i}`, name: `app-${i}` })));
      await tx.insert(deploymentRouting).values(
        ids.map((i) => ({
          id: `rt_${i}`,
          deploymentId: `dep_${i}`,
          domain: `app${i}.idle.test`,
          targetPort: 8080,
          sslEnabled: false,
          isPrimary: true,
          loadBalancerAlgo: "round-robin" as const,
        })),
      );
      await tx.insert(deploymentLocations).values(
        ids.flatMap((i) =>
          Array.from({ length: REPLICAS_PER_DEPLOYMENT }, (_, r) => ({
            id: `loc_${i}_${r}`,
            deploymentId: `dep_${i}`,
            address: `10.${(i >> 8) & 255}.${i & 255}.${r + 1}`,
            port: 30_000 + r,
            status: "running" as const,
            healthStatus: "healthy" as const,
            cpuUsage: 10 + r * 20,
            cpuUpdatedAt: now,
          })),
        ),
      );
    });
  }
  await handle.close();
}

async function switchToLeastCpu(dataDir: string): Promise<void> {
  const { openDb } = await import("../src/db/client.js");
  const { deploymentRouting } = await import("../schema/tables.js");
  const handle = await openDb({ DATA_DIR: dataDir });
  const ids = Array.from({ length: LEAST_CPU }, (_, i) => `rt_${i * (DEPLOYMENTS / LEAST_CPU)}`);
  await handle.db
    .update(deploymentRouting)
    .set({ loadBalancerAlgo: "least-conn" })
    .where(inArray(deploymentRouting.id, ids));
  await handle.close();
}

function runCase(script: string, dataDir: string, fallback: boolean): Promise<ChildResult | undefined> {
  return new Promise((resolvePromise) => {
    const child = fork(script, [CHILD_FLAG, dataDir, String(fallback)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    let result: ChildResult | undefined;
    child.on("message", (m) => {
      result = m as ChildResult;
    });
    child.on("exit", () => resolvePromise(result));
  });
}

async function main(): Promise<void> {
  const treeAt = process.argv.indexOf("--tree");
  const tree = treeAt === -1 ? undefined : process.argv[treeAt + 1];
  const script = tree ? resolve(tree, "bench/idle.ts") : fileURLToPath(import.meta.url);
  const dir = mkdtempSync(join(tmpdir(), "obiente-idle-"));
  try {
    const t0 = performance.now();
    const cache = process.env.IDLE_CACHE_DIR;
    if (cache && existsSync(join(cache, "pglite"))) {
      cpSync(join(cache, "pglite"), join(dir, "pglite"), { recursive: true });
    } else {
      await seed(dir);
      if (cache) {
        cpSync(join(dir, "pglite"), join(cache, "pglite"), { recursive: true });
      }
    }
    process.stdout.write(
      `# Idle CPU: ${DEPLOYMENTS.toLocaleString("en")} deployments × ${REPLICAS_PER_DEPLOYMENT} replicas, PGlite\n\n` +
        `server code: ${tree ?? "this checkout"}; seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `settle ${SETTLE_SECONDS} s, measured ${IDLE_SECONDS} s; health checker off; ${availableParallelism()} cores, ` +
        `load ${loadavg()
          .map((l) => l.toFixed(2))
          .join(" ")}\n\n| case | idle CPU (% of one core) | startup ms |\n|---|---:|---:|\n`,
    );
    const row = (name: string, r: ChildResult | undefined) =>
      process.stdout.write(
        r ? `| ${name} | ${r.cpuPercent.toFixed(2)} | ${r.startMs.toFixed(0)} |\n` : `| ${name} | (failed) | |\n`,
      );
    row("no least-CPU deployment, proxy on", await runCase(script, dir, true));
    row("no least-CPU deployment, proxy off (FALLBACK_ENABLED=false)", await runCase(script, dir, false));
    await switchToLeastCpu(dir);
    row(`${LEAST_CPU} least-CPU deployments, proxy on`, await runCase(script, dir, true));
  } catch (err) {
    process.stdout.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const childAt = process.argv.indexOf(CHILD_FLAG);
if (childAt !== -1) {
  runChild(process.argv[childAt + 1] ?? "", process.argv[childAt + 2] === "true").catch((err: unknown) => {
    process.stderr.write(`idle child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  main().finally(() => process.exit(0));
}
