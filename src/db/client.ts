import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../../schema/tables.js";

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

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
}

/** Opens PostgreSQL when DATABASE_URL is set, otherwise embedded PGlite in DATA_DIR/pglite. */
export async function openDb(opts: DbOptions): Promise<DbHandle> {
  if (opts.DATABASE_URL) {
    return openPostgres(opts.DATABASE_URL, opts.maxConnections ?? 10);
  }
  return openPglite(opts.inMemory ? undefined : join(opts.DATA_DIR, "pglite"));
}

function openPostgres(url: string, max: number): DbHandle {
  const sql = postgres(url, {
    max,
    onnotice: () => {},
    connect_timeout: 10,
    idle_timeout: 60,
    // A hung query must not hold a render (or a poll) forever.
    connection: { statement_timeout: 30_000, application_name: "obiente-router" },
  });
  return {
    driver: "postgres",
    db: drizzlePg(sql, { schema }) as unknown as Db,
    async listen(channel, onNotify, onConnect) {
      const sub = await sql.listen(channel, () => onNotify(), onConnect);
      return () => sub.unlisten();
    },
    async withAdvisoryLock(key, fn) {
      const conn = await sql.reserve();
      try {
        await conn`select pg_advisory_lock(${key})`;
        try {
          return await fn();
        } finally {
          await conn`select pg_advisory_unlock(${key})`;
        }
      } finally {
        conn.release();
      }
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

async function openPglite(dir: string | undefined): Promise<DbHandle> {
  const { PGlite } = await import("@electric-sql/pglite"); // loaded only when used
  if (dir) {
    mkdirSync(dir, { recursive: true });
  }
  const client = new PGlite(dir);
  await client.waitReady;
  return {
    driver: "pglite",
    db: drizzlePglite(client, { schema }) as unknown as Db,
    async listen(channel, onNotify, onConnect) {
      const unsub = await client.listen(channel, () => onNotify());
      onConnect?.();
      return unsub;
    },
    withAdvisoryLock: (_key, fn) => fn(),
    close: () => client.close(),
  };
}

/** Rows of a `db.execute()` result: postgres-js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) {
    return result as T[];
  }
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
