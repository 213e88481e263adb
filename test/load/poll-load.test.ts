import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DynamicConfig } from "../../src/render/types.js";
import { type Running, startServer } from "../../src/server.js";
import { recordingLogger } from "../helpers/api-client.js";
import { PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { percentile } from "../helpers/load-stats.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// 50 gzip pollers for 30 s against a 10,000-deployment config. The pollers run in a child process, so the
// service's CPU (this process) is its own. Reported, not asserted: polls/s, latency, CPU; asserted: 0 errors.
const DEPLOYMENTS = 10_000;
const POLLERS = 50;
const DURATION_MS = 30_000;
const CLIENT = fileURLToPath(new URL("../helpers/poll-client.ts", import.meta.url));
const driver = DRIVERS.at(-1) ?? "pglite"; // PostgreSQL when DATABASE_URL is set, as in production

interface ClientResult {
  polls: number;
  errors: string[];
  errorCount: number;
  bytes: number;
  gzipped: number;
  latencies: number[];
}

function runPollers(url: string): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", CLIENT, url, PROVIDER_TOKEN, String(POLLERS), String(DURATION_MS)],
      { timeout: DURATION_MS + 60_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`poll client failed: ${stderr.slice(-1000)}`));
          return;
        }
        resolve(JSON.parse(stdout) as ClientResult);
      },
    );
  });
}

describe(`50 gzip pollers on a ${DEPLOYMENTS}-deployment config (${driver})`, () => {
  let tdb: TestDb | undefined;
  let server: Running | undefined;
  const logger = recordingLogger();

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    // Rows straight into the tables (10k API calls would take minutes): a route and a healthy replica each.
    await tdb.handle.db.execute(
      sql`insert into deployments (id, name) select 'dep_load_' || i, 'load ' || i from generate_series(1, ${DEPLOYMENTS}) i`,
    );
    await tdb.handle.db.execute(sql`
      insert into deployment_routing (id, deployment_id, domain, target_port, is_primary)
      select 'rt_load_' || i, 'dep_load_' || i, 'app' || i || '.example.com', 3000, true
      from generate_series(1, ${DEPLOYMENTS}) i`);
    await tdb.handle.db.execute(sql`
      insert into deployment_locations (id, deployment_id, address, port, health_status)
      select 'loc_load_' || i, 'dep_load_' || i, '10.1.' || (i / 200) || '.' || (i % 200 + 1), 3000, 'healthy'
      from generate_series(1, ${DEPLOYMENTS}) i`);
    server = await startServer(testConfig({ ...(tdb.url ? { DATABASE_URL: tdb.url } : {}), LOG_LEVEL: "warn" }), {
      handle: tdb.handle,
      logger,
    });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await tdb?.close();
  });

  it("answers every poll (0 errors) and reports polls/s, latency and CPU", async () => {
    const url = `${server?.url}/traefik/config`;
    // The config Traefik gets is the whole 10k: checked once, decompressed, against Traefik's schema.
    const first = await waitFor(async () => {
      const r = await fetch(url, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
      const text = await r.text();
      const cfg = JSON.parse(text) as DynamicConfig;
      return Object.keys(cfg.http?.services ?? {}).length === DEPLOYMENTS && { cfg, rawBytes: Buffer.byteLength(text) };
    }, 60_000);
    expect(traefikSchemaErrors(first.cfg)).toEqual([]);

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const result = await runPollers(url);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);

    expect({ errors: result.errorCount, first: result.errors }).toEqual({ errors: 0, first: [] });
    expect(result.gzipped).toBe(result.polls); // every answer came gzipped
    expect(result.polls).toBeGreaterThanOrEqual(POLLERS); // sanity: every poller got answers
    expect(percentile(result.latencies, 99)).toBeLessThan(20_000); // generous: a stuck server, not a slow one
    const raw = first.rawBytes;

    const cpuPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
    console.log(
      `poll-load (${driver}): ${POLLERS} pollers × ${DURATION_MS / 1000}s on ${DEPLOYMENTS} deployments: ` +
        `${result.polls} polls, ${(result.polls / (DURATION_MS / 1000)).toFixed(0)} polls/s, ` +
        `p50 ${percentile(result.latencies, 50).toFixed(1)}ms p99 ${percentile(result.latencies, 99).toFixed(1)}ms, ` +
        `0 errors, ${(result.bytes / result.polls / 1024).toFixed(0)} KiB gzipped per poll (${(raw / 1024 / 1024).toFixed(1)} MiB raw), ` +
        `server CPU ${cpuPct.toFixed(0)}% of one core (user ${(cpu.user / 1e6).toFixed(1)}s, system ${(cpu.system / 1e6).toFixed(1)}s)`,
    );
    expect(logger.errors).toEqual([]);
  }, 180_000);
});
