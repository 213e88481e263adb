import { readFileSync } from "node:fs";
import { systemClock } from "../src/lib/clock.js";
import { createLogger } from "../src/lib/logger.js";
import { startProxy } from "../src/proxy/server.js";
import type { ProxyReplicaRow, ProxyRouteRow, ProxySnapshot } from "../src/proxy/table.js";

// Benchmark entry for /work/shared/bench/run.sh (--extra): the real proxy code path (secret check, deployment
// lookup, least-CPU choice, header rewrite, pooled upstreams) on a fixed table instead of a database. Run it from
// the repository with `node --import tsx bench/proxy-entry.ts` (bench/proxy.sh does). Requests must carry what
// Traefik sends: `X-Obiente-Proxy-Secret: <BENCH_SECRET>` and `X-Obiente-Deployment: <benchDeploymentId(host)>`
// (there is no Host lookup: issue 10 #1); bench/proxy.sh adds both to the harness's requests. Reads
// $BENCH_ROUTES_JSON or the file $BENCH_ROUTES: {"app1.test":["127.0.0.1:19001",…],…}; serves on $BIND:$PORT.

export const BENCH_SECRET = "bench-secret-not-used-0123456789";

/** The deployment a bench host stands for: `app1.test` → `dep_app1_test` (bench/proxy.sh derives the same). */
export function benchDeploymentId(host: string): string {
  return `dep_${host.toLowerCase().replace(/[^a-z0-9]+/g, "_")}`;
}

type Routes = Record<string, string[]>;

function readRoutes(): Routes {
  const inline = process.env.BENCH_ROUTES_JSON;
  const file = process.env.BENCH_ROUTES;
  const text = inline && inline.length > 0 ? inline : file ? readFileSync(file, "utf8") : undefined;
  if (!text) {
    throw new Error("set BENCH_ROUTES_JSON or BENCH_ROUTES");
  }
  return JSON.parse(text) as Routes;
}

/** Each host is a deployment whose replicas are healthy; two share the lowest CPU, one has no reading. */
export function benchSnapshot(routes: Routes, now: Date): ProxySnapshot {
  const out: { routes: ProxyRouteRow[]; replicas: ProxyReplicaRow[] } = { routes: [], replicas: [] };
  let d = 0;
  for (const [host, addrs] of Object.entries(routes)) {
    const deploymentId = benchDeploymentId(host);
    d++;
    out.routes.push({
      id: `rt_bench${d}`,
      deploymentId,
      domain: host.toLowerCase(),
      pathPrefix: "/",
      targetPort: 80,
      protocol: "http",
      isPrimary: true,
      healthIntervalSeconds: 3600,
    });
    addrs.forEach((addr, i) => {
      const colon = addr.lastIndexOf(":");
      out.replicas.push({
        id: `${deploymentId}_r${i + 1}`,
        deploymentId,
        address: addr.slice(0, colon),
        port: Number(addr.slice(colon + 1)),
        status: "running",
        healthStatus: "healthy",
        cpuUsage: i === 2 ? null : 25,
        cpuUpdatedAt: i === 2 ? null : now,
      });
    });
  }
  return out;
}

const routes = readRoutes();
const started = new Date();
const logger = createLogger("warn");
startProxy({
  port: Number(process.env.PORT ?? 8099),
  host: process.env.BIND ?? "127.0.0.1",
  loadSnapshot: async () => benchSnapshot(routes, started),
  reportFailure: async (f) => logger.warn("replica failure", { ...f }),
  secret: BENCH_SECRET,
  logger,
  clock: systemClock,
  defaultIntervalSeconds: 3600,
  refreshMs: 1000,
  connectTimeoutMs: 3000,
  responseTimeoutMs: 60_000,
}).then(
  (running) => {
    const stop = () => {
      running.close().finally(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  },
  (err: unknown) => {
    process.stderr.write(`bench proxy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
