import type { PendingQuery, Sql, TransactionSql } from "postgres";
import { DatabaseTimeout } from "./errors.js";

// postgres.js has no client-side query timeout, and statement_timeout runs on the server, which cannot fire while
// the server is frozen (SIGSTOP, a stalled VM, a black-holed network). Every promise that waits on the server is
// raced against a timer here, so a request fails with DatabaseTimeout instead of hanging.

/** Resolves like `p`, or rejects with DatabaseTimeout after `ms`; `onAbandon` gets `p` when the timer won. */
export function within<T>(p: Promise<T>, ms: number, onAbandon?: (late: Promise<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onAbandon?.(p);
      reject(new DatabaseTimeout(ms));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** A postgres.js query whose `await` gives up after `ms`. Lazy like the original: it runs when awaited. */
function guardQuery<T extends PendingQuery<never>>(q: T, ms: number): T {
  const settle = () =>
    within(Promise.resolve(q), ms, () => {
      // Still queued (no connection picked it yet): dequeue it so a write we reported as failed never runs later.
      // An active query is left alone: postgres.js would open a cancel connection to the frozen server, and the
      // server's own statement_timeout cancels it when the server is merely slow (postgres src/index.js cancel()).
      if ((q as unknown as { state?: unknown }).state == null) {
        q.cancel();
      }
    });
  return new Proxy(q, {
    get(target, prop) {
      if (prop === "then") {
        return (ok?: (v: unknown) => unknown, fail?: (e: unknown) => unknown) => settle().then(ok, fail);
      }
      if (prop === "catch") {
        return (fail?: (e: unknown) => unknown) => settle().catch(fail);
      }
      if (prop === "finally") {
        return (fn?: () => void) => settle().finally(fn);
      }
      if (prop === "values" || prop === "raw") {
        return () => guardQuery((target[prop] as () => T).call(target), ms);
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

type AnySql = Sql | TransactionSql;

/**
 * Wraps a postgres.js client (or a transaction's) for drizzle: `unsafe` (every drizzle query), `begin` and
 * `savepoint` give up after `ms`. A transaction is bounded while it waits for BEGIN and for COMMIT/ROLLBACK;
 * in between, each statement has its own deadline and the application's own work is not timed.
 */
export function withDeadlines<S extends AnySql>(sql: S, ms: number): S {
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === "unsafe") {
        return (...args: Parameters<Sql["unsafe"]>) =>
          guardQuery((target.unsafe as Sql["unsafe"])(...args) as PendingQuery<never>, ms);
      }
      if (prop === "begin" || prop === "savepoint") {
        return (...args: unknown[]) => boundedTransaction(target, prop, args, ms);
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

function boundedTransaction(target: AnySql, method: "begin" | "savepoint", args: unknown[], ms: number) {
  const fn = args.pop() as (tx: TransactionSql) => unknown;
  let abandoned = false;
  let arm: () => void = () => {};
  let disarm: () => void = () => {};
  const inner = (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]?.call(
    target,
    ...args,
    async (tx: TransactionSql) => {
      if (abandoned) {
        throw new DatabaseTimeout(ms); // BEGIN came back after we gave up: roll back, do nothing
      }
      disarm();
      try {
        return await fn(withDeadlines(tx, ms));
      } finally {
        arm(); // COMMIT or ROLLBACK comes next
      }
    },
  ) as Promise<unknown>;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    arm = () => {
      timer = setTimeout(() => {
        abandoned = true;
        reject(new DatabaseTimeout(ms));
      }, ms);
    };
    disarm = () => clearTimeout(timer);
    arm();
    inner.then(
      (v) => {
        disarm();
        resolve(v);
      },
      (err: unknown) => {
        disarm();
        reject(err);
      },
    );
  });
}
