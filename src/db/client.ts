import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../../schema/tables.js";
import { acquireFolderLock } from "../lib/lock.js";
import { withDeadlines, within } from "./deadline.js";

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/**
 * A transaction handle (`db.transaction(async (tx) => …)`). It is a `Db` too (drizzle's PgTransaction extends
 * PgDatabase), so repo functions taking `db: Db` run inside one as is; no cast. Take `tx: Tx` where a query only
 * makes sense inside a transaction (row locks).
 */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export interface DbHandle {
  driver: "postgres" | "pglite";
  db: Db;
  /** Subscribes to NOTIFY on a channel. `onConnect` runs on every (re)connect of the listening session. */
  listen(channel: string, onNotify: () => void, onConnect?: () => void): Promise<() => Promise<void>>;
  /** Runs `fn` while holding a session advisory lock (PGlite: no other session exists, so just runs it). */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DbOptions {
  DATABASE_URL?: string | undefined;
  DATA_DIR: string;
  /** In-memory PGlite (tests); ignored when DATABASE_URL is set. */
  inMemory?: boolean;
  maxConnections?: number;
  /** Client-side deadline of every query, transaction step, LISTEN and lock wait (PostgreSQL). */
  DB_QUERY_TIMEOUT_MS?: number;
  DB_CONNECT_TIMEOUT_SECONDS?: number;
  /** Pooled connections idle this long are closed. */
  DB_IDLE_TIMEOUT_SECONDS?: number;
}

/** The way out named when a PGlite folder is already in use. */
const PGLITE_IN_USE_HINT =
  "Two processes on one PGlite folder lose writes. Stop that process first, or go through its API " +
  "(GET /traefik/config, /api/v1), or use PostgreSQL (DATABASE_URL, or --url on the CLI), which several " +
  "processes can share.";

/** Opens PostgreSQL when DATABASE_URL is set, otherwise embedded PGlite in DATA_DIR/pglite (locked to this process). */
export async function openDb(opts: DbOptions): Promise<DbHandle> {
  if (opts.DATABASE_URL) {
    return openPostgres(opts.DATABASE_URL, {
      max: opts.maxConnections ?? 10,
      queryMs: opts.DB_QUERY_TIMEOUT_MS ?? 5000,
      connectSeconds: opts.DB_CONNECT_TIMEOUT_SECONDS ?? 5,
      idleSeconds: opts.DB_IDLE_TIMEOUT_SECONDS ?? 60,
    });
  }
  return openPglite(opts.inMemory ? undefined : join(opts.DATA_DIR, "pglite"));
}

interface PgLimits {
  max: number;
  queryMs: number;
  connectSeconds: number;
  idleSeconds: number;
}

function openPostgres(url: string, limits: PgLimits): DbHandle {
  const { queryMs } = limits;
  const raw = postgres(url, {
    max: limits.max,
    onnotice: () => {},
    connect_timeout: limits.connectSeconds, // covers TCP connect and the startup handshake (until ReadyForQuery)
    idle_timeout: limits.idleSeconds,
    connection: {
      // Server-side twins of the client deadline: a slow (not frozen) server cancels the statement itself and the
      // connection stays usable; a transaction left open by a vanished client is rolled back.
      statement_timeout: queryMs,
      idle_in_transaction_session_timeout: queryMs * 2,
      application_name: "obiente-router",
    },
  });
  const sql = withDeadlines(raw, queryMs);
  return {
    driver: "postgres",
    db: drizzlePg(sql, { schema }) as unknown as Db,
    async listen(channel, onNotify, onConnect) {
      // A LISTEN answered after we gave up is undone, so a retry does not add a second subscription.
      const sub = await within(
        raw.listen(channel, () => onNotify(), onConnect),
        queryMs,
        (late) => late.then((s) => s.unlisten()).catch(() => {}),
      );
      return () => within(Promise.resolve(sub.unlisten()), queryMs).then(() => {});
    },
    async withAdvisoryLock(key, fn) {
      const conn = await within(raw.reserve(), queryMs, (late) => late.then((c) => c.release()).catch(() => {}));
      const guarded = withDeadlines(conn, queryMs);
      try {
        // Try-lock in a loop rather than pg_advisory_lock: each wait is a short statement, so the deadline (and
        // statement_timeout) bounds a frozen server without failing while another instance runs a long migration.
        while (!(await guarded.unsafe("select pg_try_advisory_lock($1) as ok", [key]))[0]?.ok) {
          await new Promise((r) => setTimeout(r, 200));
        }
        try {
          return await fn();
        } finally {
          await guarded.unsafe("select pg_advisory_unlock($1)", [key]);
        }
      } finally {
        conn.release();
      }
    },
    close: () => raw.end({ timeout: 5 }),
  };
}

async function openPglite(dir: string | undefined): Promise<DbHandle> {
  const { PGlite } = await import("@electric-sql/pglite"); // loaded only when used
  let lock: { release(): void } | undefined;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    // PGlite has no multi-process safety: a second opener would acknowledge writes that a restart then loses.
    lock = acquireFolderLock(`${dir}.lock`, PGLITE_IN_USE_HINT);
  }
  let client: InstanceType<typeof PGlite>;
  try {
    client = new PGlite(dir);
    await client.waitReady;
  } catch (err) {
    lock?.release();
    throw err;
  }
  return {
    driver: "pglite",
    db: drizzlePglite(client, { schema }) as unknown as Db,
    async listen(channel, onNotify, onConnect) {
      const unsub = await client.listen(channel, () => onNotify());
      onConnect?.();
      return unsub;
    },
    withAdvisoryLock: (_key, fn) => fn(),
    async close() {
      try {
        await client.close();
      } finally {
        lock?.release();
      }
    },
  };
}

/** Rows of a `db.execute()` result: postgres-js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) {
    return result as T[];
  }
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
