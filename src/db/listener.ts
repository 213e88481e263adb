import postgres, { type Options, type Sql } from "postgres";
import { backoffMs, LISTEN_BACKOFF } from "./backoff.js";
import { within } from "./deadline.js";

// LISTEN needs one long-lived session. postgres.js' own sql.listen() re-LISTENs after a reconnect, but it hides the
// connection's state (it takes over `onclose`), its retry delay grows to 20 s, and an unlisten after a reconnect is
// a no-op (postgres src/index.js listen(): the re-listen registers new listener objects). So the session is ours: one
// connection at a time, a fresh one after each loss, a bounded backoff, and the subscribers told of each change.

/** What a subscriber hears: notifications, and each change of the listening session's state (never per attempt). */
export interface ListenEvents {
  /** `payload`: what the NOTIFY carried ("" when nothing). */
  onNotify(payload: string): void;
  /** The LISTEN is in place: at subscribe time, and again after each reconnect (notifications were lost meanwhile). */
  onConnect?: (() => void) | undefined;
  /** The session was lost; reconnecting with backoff. Called once per loss. */
  onDisconnect?: ((err: unknown) => void) | undefined;
}

export interface SessionListener {
  /** Rejects when the LISTEN cannot be made now; once made, it survives reconnects until unsubscribed. */
  listen(channel: string, events: ListenEvents): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface SessionListenerOptions {
  url: string;
  /** Connection options (startup parameters, connect timeout); the session-specific ones are set here. */
  options: Options<Record<string, never>>;
  queryMs: number;
  /** A LISTEN session is idle by nature: this ping finds a dead peer (a failed-over host) without TCP keepalive. */
  pingMs?: number;
}

interface Sub extends ListenEvents {
  live: boolean; // onConnect/onDisconnect only after listen() has resolved for it
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** A session that keeps LISTENing on its channels across connection losses. */
export function createSessionListener(opts: SessionListenerOptions): SessionListener {
  const channels = new Map<string, Set<Sub>>();
  let sql: Sql | undefined; // the current connection (also while an attempt is under way)
  let up = false;
  let attempt = 0;
  let connecting: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  let ping: NodeJS.Timeout | undefined;
  let closed = false;

  const subs = () => [...channels.values()].flatMap((set) => [...set]);
  const drop = (s: Sql | undefined) => void s?.end({ timeout: 0 }).catch(() => {});

  const lost = (s: Sql, err: unknown) => {
    if (closed || s !== sql || !up) {
      return; // an old connection, or an attempt (whose own promise reports the failure)
    }
    up = false;
    sql = undefined;
    clearInterval(ping);
    drop(s);
    for (const sub of subs()) {
      if (sub.live) {
        sub.onDisconnect?.(err);
      }
    }
    scheduleRetry();
  };

  const open = async () => {
    const s = postgres(opts.url, {
      ...opts.options,
      max: 1,
      idle_timeout: undefined,
      max_lifetime: null,
      fetch_types: false,
      backoff: () => 0, // the retry delay is ours
      onclose: () => lost(s, new Error("LISTEN connection closed")),
      onnotify: (channel: string, payload: string) => {
        for (const sub of channels.get(channel) ?? []) {
          sub.onNotify(payload ?? "");
        }
      },
    } as Options<Record<string, never>>);
    sql = s;
    try {
      for (const channel of channels.keys()) {
        await within(Promise.resolve(s.unsafe(`listen ${ident(channel)}`)), opts.queryMs);
      }
    } catch (err) {
      sql = undefined;
      drop(s);
      throw err;
    }
    if (closed) {
      drop(s); // closed while this attempt was under way
      return;
    }
    up = true;
    attempt = 0;
    clearInterval(ping);
    ping = setInterval(() => {
      within(Promise.resolve(s.unsafe("select 1")), opts.queryMs).catch((err: unknown) => lost(s, err));
    }, opts.pingMs ?? 15_000);
    ping.unref();
    for (const sub of subs()) {
      if (sub.live) {
        sub.onConnect?.(); // a reconnect: anything sent while away is lost, so subscribers refresh in full
      }
    }
  };

  const connect = (): Promise<void> => {
    clearTimeout(retry);
    retry = undefined;
    connecting ??= open()
      .catch((err: unknown) => {
        scheduleRetry();
        throw err;
      })
      .finally(() => {
        connecting = undefined;
      });
    return connecting;
  };

  function scheduleRetry() {
    if (closed || retry || !subs().some((s) => s.live)) {
      return;
    }
    const delay = backoffMs(attempt++, Math.random(), LISTEN_BACKOFF.baseMs, LISTEN_BACKOFF.maxMs);
    retry = setTimeout(() => void connect().catch(() => {}), delay);
    retry.unref();
  }

  return {
    async listen(channel, events) {
      if (closed) {
        throw new Error("listener closed");
      }
      const sub: Sub = { ...events, live: false };
      const set = channels.get(channel) ?? new Set<Sub>();
      const isNew = set.size === 0;
      set.add(sub);
      channels.set(channel, set);
      try {
        if (up && sql && isNew) {
          await within(Promise.resolve(sql.unsafe(`listen ${ident(channel)}`)), opts.queryMs);
        } else if (!up) {
          await connect();
        }
      } catch (err) {
        removeSub(channel, sub);
        throw err;
      }
      sub.live = true;
      sub.onConnect?.();
      return async () => {
        removeSub(channel, sub);
        const s = sql;
        if (channels.size === 0) {
          // Nobody listens any more: end the session rather than keep pinging and reconnecting it.
          up = false;
          sql = undefined;
          clearInterval(ping);
          clearTimeout(retry);
          retry = undefined;
          await s?.end({ timeout: 1 }).catch(() => {});
        } else if (up && s && !channels.has(channel)) {
          await within(Promise.resolve(s.unsafe(`unlisten ${ident(channel)}`)), opts.queryMs).catch(() => {});
        }
      };
    },
    async close() {
      closed = true;
      up = false;
      clearInterval(ping);
      clearTimeout(retry);
      const s = sql;
      sql = undefined;
      await s?.end({ timeout: 1 }).catch(() => {});
    },
  };

  function removeSub(channel: string, sub: Sub) {
    const set = channels.get(channel);
    set?.delete(sub);
    if (set?.size === 0) {
      channels.delete(channel);
    }
  }
}
