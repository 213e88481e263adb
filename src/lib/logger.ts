export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

type ErrorLike = {
  name?: unknown;
  message?: unknown;
  stack?: unknown;
  code?: unknown;
  cause?: unknown;
  query?: unknown;
  params?: unknown;
  parameters?: unknown;
  [k: string]: unknown;
};

const SQLSTATE_RE = /^[0-9A-Z]{5}$/;
const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);

/**
 * What a log line may say about an error. A database error's message is never logged: drizzle's carries every
 * query parameter (header values, htpasswd hashes, PEM), and the server's own (`detail`, "Failing row
 * contains …", "invalid input syntax … "value"") can quote them too. What is kept: the SQLSTATE, the constraint,
 * table and column, and for connection failures the driver's code and message (address and port only).
 */
export function errorFields(err: unknown): Fields {
  const top = err as ErrorLike;
  const chain: ErrorLike[] = [];
  for (let e = top; e && typeof e === "object" && chain.length < 5; e = e.cause as ErrorLike) {
    chain.push(e);
  }
  const sqlstate = chain.map((e) => str(e.code)).find((c) => c !== undefined && SQLSTATE_RE.test(c));
  const isDb =
    sqlstate !== undefined ||
    chain.some((e) => "query" in e || "params" in e || "parameters" in e || /^(Drizzle|Postgres)/.test(String(e.name)));
  const name = str(top?.name) ?? "Error";
  if (!isDb) {
    const frames = typeof top?.stack === "string" ? top.stack.split("\n").filter((l) => /^\s+at /.test(l)) : [];
    return {
      name,
      message: redactText(String(top?.message ?? err)),
      ...(frames.length > 0 ? { stack: frames.slice(0, 12).map((l) => l.trim()) } : {}),
    };
  }
  const pick = (...keys: string[]) => {
    for (const e of chain) {
      for (const k of keys) {
        const v = str(e[k]);
        if (v !== undefined) {
          return v;
        }
      }
    }
    return undefined;
  };
  const fields: Fields = { name };
  if (sqlstate) {
    fields.sqlstate = sqlstate;
  }
  for (const [out, keys] of [
    ["constraint", ["constraint_name", "constraint"]],
    ["table", ["table_name", "table"]],
    ["column", ["column_name", "column"]],
  ] as const) {
    const v = pick(...keys);
    if (v !== undefined) {
      fields[out] = v;
    }
  }
  const innermost = chain[chain.length - 1];
  const code = str(innermost?.code);
  if (!sqlstate && innermost && innermost !== top && code) {
    // A connection failure (CONNECT_TIMEOUT, ECONNREFUSED, DB_TIMEOUT…): its message names the address, no values.
    fields.code = code;
    fields.cause = redactText(String(innermost.message ?? ""));
  }
  return fields;
}

/** One line for stderr (startup and CLI failures): the message, or for a database error its safe fields. */
export function errorLine(err: unknown): string {
  const e = errorFields(err);
  return typeof e.message === "string" ? e.message : JSON.stringify(e);
}

const PEM_RE = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g;
const SECRET_TEXT: [RegExp, string][] = [
  [PEM_RE, "[PEM redacted]"],
  [/\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}/g, "[hash redacted]"], // bcrypt
  [/\{SHA\}[A-Za-z0-9+/=]{27,}/g, "[hash redacted]"],
  [/\$apr1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}/g, "[hash redacted]"],
  [/(\w+:\/\/[^:/@\s]*:)[^@\s]*@/g, "$1***@"], // a password in a URL (DATABASE_URL)
];
const SECRET_KEY_RE = /authorization|cookie|password|passwd|secret|token|private_?key|key_?pem|^params$|^parameters$/i;

/** Masks what looks like a secret in free text: PEM blocks, htpasswd hashes, URL passwords. */
export function redactText(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_TEXT) {
    out = out.replace(re, by);
  }
  return out;
}

function redactValue(key: string, v: unknown, depth: number): unknown {
  if (v instanceof Error) {
    return errorFields(v);
  }
  if (SECRET_KEY_RE.test(key) && v !== undefined && v !== null && typeof v !== "boolean") {
    return "[redacted]";
  }
  if (typeof v === "string") {
    return redactText(v);
  }
  if (v && typeof v === "object" && depth < 4) {
    if (Array.isArray(v)) {
      return v.map((x) => redactValue("", x, depth + 1));
    }
    const out: Fields = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = redactValue(k, x, depth + 1);
    }
    return out;
  }
  return v;
}

/**
 * JSON lines on stdout. Redaction is configured here, once: errors go through `errorFields`, keys naming
 * secrets (authorization, token, password, secret, private key, query params) are masked, and PEM blocks,
 * htpasswd hashes and URL passwords are masked in any string.
 */
export function createLogger(
  level: Level = "info",
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const min = ORDER[level];
  const log = (lvl: Level, message: string, fields?: Fields) => {
    if (ORDER[lvl] < min) {
      return;
    }
    const entry: Fields = { time: new Date().toISOString(), level: lvl, msg: redactText(message) };
    for (const [k, v] of Object.entries(fields ?? {})) {
      entry[k] = redactValue(k, v, 0);
    }
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
