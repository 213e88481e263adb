import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "../../schema/tables.js";
import { acquireFolderLock } from "../lib/lock.js";
import { poolBackoffSeconds } from "./backoff.js";
import { withDeadlines, within } from "./deadline.js";
import { createSessionListener, type ListenEvents } from "./listener.js";

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
  /**
   * Subscribes to NOTIFY on a channel. `onConnect` runs once the LISTEN is in place and again after every reconnect
   * of the listening session (a full refresh is due: notifications were lost meanwhile); `onDisconnect` once per
   * loss. Without a session (a transaction pooler and no DATABASE_LISTEN_URL) nothing is ever notified.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onConnect?: () => void,
    onDisconnect?: (err: unknown) => void,
  ): Promise<() => Promise<void>>;
  /** False when no session connection exists for LISTEN (see `listen`): changes arrive by polling only. */
  readonly notifies: boolean;
  /** Runs `fn` while holding a session advisory lock (PGlite: no other session exists, so just runs it). */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DbOptions {
  DATABASE_URL?: string | undefined;
  /** Direct, session-mode connection for LISTEN and session advisory locks (DATABASE_URL may be a pooler). */
  DATABASE_LISTEN_URL?: string | undefined;
  /** `transaction`: DATABASE_URL is a transaction pooler. Unset: `transaction` iff DATABASE_LISTEN_URL is set. */
  DATABASE_POOL_MODE?: "session" | "transaction" | undefined;
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
    return openPostgres(opts.DATABASE_URL, opts.DATABASE_LISTEN_URL, {
      pooled: (opts.DATABASE_POOL_MODE ?? (opts.DATABASE_LISTEN_URL ? "transaction" : "session")) === "transaction",
      max: opts.maxConnections ?? 10,
      queryMs: opts.DB_QUERY_TIMEOUT_MS ?? 5000,
      connectSeconds: opts.DB_CONNECT_TIMEOUT_SECONDS ?? 5,
      idleSeconds: opts.DB_IDLE_TIMEOUT_SECONDS ?? 60,
    });
  }
  return openPglite(opts.inMemory ? undefined : join(opts.DATA_DIR, "pglite"));
}

interface PgLimits {
  /** DATABASE_URL is a transaction pooler: each transaction may run on another server session. */
  pooled: boolean;
  max: number;
  queryMs: number;
  connectSeconds: number;
  idleSeconds: number;
}

const APPLICATION_NAME = "obiente-router";
const LISTEN_APPLICATION_NAME = "obiente-router-listen";

/**
 * Startup parameters of a direct (session) connection: server-side twins of the client deadline. A slow (not
 * frozen) server cancels the statement itself and the connection stays usable; a transaction left open by a
 * vanished client is rolled back. PgBouncer refuses unknown startup parameters ("unsupported startup parameter:
 * statement_timeout") unless listed in its ignore_startup_parameters, and then drops them, so a pooled connection
 * sends only application_name (which PgBouncer tracks) and the operator sets the timeouts on the role instead.
 */
function sessionParameters(queryMs: number) {
  return {
    statement_timeout: queryMs,
    idle_in_transaction_session_timeout: queryMs * 2,
    application_name: APPLICATION_NAME,
  };
}

function openPostgres(url: string, listenUrl: string | undefined, limits: PgLimits): DbHandle {
  const { queryMs, pooled } = limits;
  const common = {
    onnotice: () => {},
    connect_timeout: limits.connectSeconds, // covers TCP connect and the startup handshake (until ReadyForQuery)
  };
  const raw = postgres(url, {
    ...common,
    max: limits.max,
    idle_timeout: limits.idleSeconds,
    backoff: poolBackoffSeconds, // after a failover, new queries get a connection within ~2 s of the server's return
    // Through a transaction pooler a named prepared statement may be bound on another server session (PgBouncer
    // 1.18 does not track them); unnamed statements are parsed and executed before one Sync, so they are safe.
    prepare: !pooled,
    connection: pooled ? { application_name: APPLICATION_NAME } : sessionParameters(queryMs),
  });
  const sql = withDeadlines(raw, queryMs);
  // A session: the direct URL, or DATABASE_URL itself unless that is a transaction pooler.
  const sessionUrl = listenUrl ?? (pooled ? undefined : url);
  const sessionOptions = { ...common, connection: sessionParameters(queryMs) };
  const listener = sessionUrl
    ? createSessionListener({
        url: sessionUrl,
        // Its own name in pg_stat_activity: the one backend that must stay connected (and outside any pooler).
        options: {
          ...common,
          connection: { ...sessionParameters(queryMs), application_name: LISTEN_APPLICATION_NAME },
        },
        queryMs,
      })
    : undefined;
  const session = listenUrl
    ? postgres(listenUrl, { ...sessionOptions, max: 1, idle_timeout: limits.idleSeconds, backoff: poolBackoffSeconds })
    : pooled
      ? undefined
      : raw;
  return {
    driver: "postgres",
    db: drizzlePg(sql, { schema }) as unknown as Db,
    notifies: listener !== undefined,
    async listen(channel, onNotify, onConnect, onDisconnect) {
      if (!listener) {
        // LISTEN through a transaction pooler succeeds and then hears nothing (the server session goes back to
        // the pool), so it is not attempted: callers poll.
        onConnect?.();
        return async () => {};
      }
      const events: ListenEvents = { onNotify, onConnect, onDisconnect };
      return listener.listen(channel, events);
    },
    withAdvisoryLock: (key, fn) =>
      session ? withSessionLock(session, queryMs, key, fn) : withTransactionLock(sql, key, fn),
    async close() {
      await listener?.close();
      if (session && session !== raw) {
        await session.end({ timeout: 5 });
      }
      await raw.end({ timeout: 5 });
    },
  };
}

async function withSessionLock<T>(session: postgres.Sql, queryMs: number, key: number, fn: () => Promise<T>) {
  const conn = await within(session.reserve(), queryMs, (late) => late.then((c) => c.release()).catch(() => {}));
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
}

/**
 * No session to hold a lock in (a transaction pooler without DATABASE_LISTEN_URL): a session lock would stay with
 * whichever server session ran it, and its unlock could run on another, so the lock would never be released. A
 * transaction holds a transaction-scoped lock instead, kept open (one pooled server session) while `fn` runs.
 */
async function withTransactionLock<T>(sql: postgres.Sql, key: number, fn: () => Promise<T>) {
  let out: T | undefined;
  await sql.begin(async (tx) => {
    while (!(await tx.unsafe("select pg_try_advisory_xact_lock($1) as ok", [key]))[0]?.ok) {
      await new Promise((r) => setTimeout(r, 200));
    }
    out = await fn();
  });
  return out as T;
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
    notifies: true,
    async listen(channel, onNotify, onConnect) {
      const unsub = await client.listen(channel, (payload) => onNotify(payload ?? ""));
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

/**
 * PgBouncer's refusal of our startup parameters ("unsupported startup parameter: statement_timeout", SQLSTATE
 * 08P01) turned into the fix. A plain Error without the cause: logs print a database error's SQLSTATE only.
 */
export function explainPoolerRefusal(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e?.code === "08P01" && /unsupported startup parameter/.test(String(e.message))) {
    return new Error(
      "DATABASE_URL refused the session's startup parameters: it looks like PgBouncer in transaction mode. Set " +
        "DATABASE_LISTEN_URL to a direct connection to PostgreSQL (or DATABASE_POOL_MODE=transaction without one).",
    );
  }
  return err;
}

/** Rows of a `db.execute()` result: postgres-js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) {
    return result as T[];
  }
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
