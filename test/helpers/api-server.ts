import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { buildApp, type Wiring } from "../../src/app-wiring.js";
import type { Config } from "../../src/config/env.js";
import type { DbHandle } from "../../src/db/client.js";
import type { HealthChecker } from "../../src/health/checker.js";
import { createLogger, type Fields, type Logger } from "../../src/lib/logger.js";
import type { ConfigCache } from "../../src/provider/config-cache.js";
import { type Running, type StartOptions, startServer } from "../../src/server.js";
import { ApiClient, type LocationJson, type RoutingJson } from "./api-client.js";
import { testConfig } from "./app.js";
import { type Driver, makeTestDb, type TestDb } from "./db.js";

export interface ApiServerOptions {
  /** Serve through `app.request()` (no socket, no change feed, no health checker) instead of 127.0.0.1. */
  inProcess?: boolean;
  /** The Traefik static config served configs are checked against (default: the shipped one). */
  staticConfig?: unknown;
  /** Keep every log line (debug and up) in `logs`; error lines still fail the test that caused them. */
  captureLogs?: boolean;
  /** Error log lines are expected (a test provokes them): do not fail on them. */
  allowErrorLogs?: boolean;
  /** A fake clock, probe or schedule for the server (socket mode only). */
  start?: Pick<StartOptions, "clock" | "probe" | "schedule" | "resolveTxt">;
}

/** One server on a fresh, migrated database for the enclosing `describe`, started and stopped by its own hooks. */
export interface ApiServer {
  /** Usable from the suite's hooks and tests; every answer is checked for 5xx statuses and leaked internals. */
  readonly api: ApiClient;
  /** Error lines logged so far (the harness fails a test that logged one). */
  readonly errors: { message: string; fields?: Fields }[];
  /** Every log line, with `captureLogs`. */
  readonly logs: string[];
  /** The config the server runs with: testConfig() plus the suite's `env`. */
  readonly config: Config;
  readonly handle: DbHandle;
  readonly db: DbHandle["db"];
  /** Base URL of the socket (not in-process). */
  readonly url: string;
  readonly cache: ConfigCache;
  /** The running server's checker (socket mode). */
  readonly checker: HealthChecker;
  /** Creates a deployment through the API and, with `routing`, its primary route; returns the routing view. */
  seedDeployment(id: string, routing?: Record<string, unknown>): Promise<RoutingJson | undefined>;
  /** Registers (or updates) a replica through the API. */
  seedLocation(deploymentId: string, id: string, body: Record<string, unknown>): Promise<LocationJson>;
}

/** A logger that keeps error lines, and with `lines` every JSON line as the server writes it. */
function harnessLogger(errors: ApiServer["errors"], lines: string[] | undefined): Logger {
  const base = lines ? createLogger("debug", (line) => lines.push(line)) : undefined;
  return {
    debug: (m, f) => base?.debug(m, f),
    info: (m, f) => base?.info(m, f),
    warn: (m, f) => base?.warn(m, f),
    error(message, fields) {
      errors.push({ message, fields });
      base?.error(message, fields);
    },
  };
}

/**
 * Registers beforeAll/afterAll/afterEach in the calling `describe`: a fresh database per suite, the app on it, and
 * after every test the checks each API suite makes (no 5xx, no leaked internals, no error logged).
 */
export function useApiServer(driver: Driver, env: Record<string, string> = {}, opts: ApiServerOptions = {}): ApiServer {
  let tdb: TestDb | undefined;
  let config: Config | undefined;
  let running: Running | undefined;
  let wiring: Wiring | undefined;
  let send: ((path: string, init: RequestInit) => Promise<Response>) | undefined;
  const errors: ApiServer["errors"] = [];
  const logs: string[] = [];
  const api = new ApiClient((path, init) => {
    if (!send) {
      throw new Error("useApiServer: the server is not started yet (use it in hooks and tests)");
    }
    return send(path, init);
  }, opts.staticConfig);
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) {
      throw new Error(`useApiServer: no ${what} (not started, or not in this mode)`);
    }
    return value;
  };

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    config = testConfig({ ...(opts.captureLogs ? { LOG_LEVEL: "debug" } : {}), ...env });
    const logger = harnessLogger(errors, opts.captureLogs ? logs : undefined);
    if (opts.inProcess) {
      wiring = await buildApp(config, tdb.handle, {
        logger,
        ...(opts.start?.resolveTxt ? { resolveTxt: opts.start.resolveTxt } : {}),
        ...(opts.start?.clock ? { clock: opts.start.clock } : {}),
      });
      await wiring.cache.ensureFresh();
      const { app } = wiring;
      send = async (path, init) => app.request(path, init);
    } else {
      running = await startServer(config, { ...opts.start, handle: tdb.handle, logger });
      const base = running.url;
      send = (path, init) => fetch(`${base}${path}`, init);
    }
  });
  afterAll(async () => {
    await running?.close();
    await wiring?.close();
    await tdb?.close();
  });
  afterEach(() => {
    expect(api.faults).toEqual([]);
    if (!opts.allowErrorLogs) {
      expect(errors).toEqual([]);
    }
  });

  const server: ApiServer = {
    api,
    errors,
    logs,
    get config() {
      return need(config, "config");
    },
    get handle() {
      return need(tdb, "database").handle;
    },
    get db() {
      return need(tdb, "database").handle.db;
    },
    get url() {
      return need(running, "socket").url;
    },
    get cache() {
      return running?.cache ?? need(wiring, "app").cache;
    },
    get checker() {
      return need(running, "running server").checker;
    },
    async seedDeployment(id, routing) {
      expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
      if (!routing) {
        return undefined;
      }
      const r = await api.put<RoutingJson>(`/api/v1/deployments/${id}/routing`, routing);
      expect(r.status).toBe(200);
      return r.body;
    },
    async seedLocation(deploymentId, id, body) {
      const r = await api.put<LocationJson>(`/api/v1/deployments/${deploymentId}/locations/${id}`, body);
      expect(r.status).toBeLessThan(300);
      return r.body;
    },
  };
  return server;
}
