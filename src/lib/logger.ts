import { pino } from "pino";
import { prettyFactory } from "pino-pretty";
import { requestContext } from "./request-context.js";

export type Level = "debug" | "info" | "warn" | "error";
/** `json`: one JSON object per line (log shippers); `pretty`: pino-pretty, for a human at a terminal. */
export type LogFormat = "json" | "pretty";

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
  [/\bBearer +[A-Za-z0-9._~+/=-]{8,}/gi, "Bearer [redacted]"], // an Authorization value quoted in text
  [/\b([\w-]*(?:token|password|passwd|secret)[\w-]*)=[^\s&"',;]+/gi, "$1=[redacted]"], // key=value in text
];
const SECRET_KEY_RE = /authorization|cookie|password|passwd|secret|token|private_?key|key_?pem|^params$|^parameters$/i;

/** Masks what looks like a secret in free text: PEM blocks, htpasswd hashes, URL passwords, bearer and key=value tokens. */
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

/** Every field of a line, reduced to what may be logged (pino's `formatters.log`: runs after the mixin). */
function redactFields(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = redactValue(k, v, 0);
  }
  return out;
}

/** Where lines go: a sink (tests), pino-pretty on stdout, or stdout as JSON lines; all synchronous. */
function destinationOf(format: LogFormat, sink: ((line: string) => void) | undefined): pino.DestinationStream {
  const write = sink ?? ((line: string) => process.stdout.write(line));
  if (format === "pretty") {
    // pino-pretty's formatter on the calling thread, not a worker transport or its async Transform: a short CLI
    // run that exits right after logging loses no line, and tests see lines as they are written.
    const pretty = prettyFactory({ translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" });
    return { write: (line: string) => write(pretty(line)) };
  }
  return sink ? { write: sink } : pino.destination({ dest: 1, sync: true });
}

/**
 * pino, writing JSON lines to stdout (or `sink`, one call per line). Redaction is configured here, once: errors go
 * through `errorFields`, keys naming secrets (authorization, token, password, secret, private key, query params)
 * are masked, and PEM blocks, htpasswd hashes, URL passwords, bearer tokens and `…token=…` pairs are masked in any
 * string, messages included. A line written while a request is handled carries its `requestId` (request-context.ts).
 */
export function createLogger(level: Level = "info", sink?: (line: string) => void, format: LogFormat = "json"): Logger {
  const log = pino(
    {
      level,
      base: undefined, // no pid/hostname on every line: the shipper knows where a line came from
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: redactFields,
      },
      // Errors are reduced to errorFields before serializers run: pino's own `err` serializer must not rework them.
      serializers: { err: (v: unknown) => v },
      mixin: () => {
        const ctx = requestContext();
        return ctx ? { requestId: ctx.requestId } : {};
      },
    },
    destinationOf(format, sink),
  );
  const at =
    (lvl: Level) =>
    (message: string, fields?: Fields): void => {
      if (log.isLevelEnabled(lvl)) {
        log[lvl](fields ?? {}, redactText(message));
      }
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** The logger a process runs with: LOG_LEVEL and LOG_FORMAT from the parsed environment. */
export function loggerFor(config: { LOG_LEVEL: Level; LOG_FORMAT: LogFormat }): Logger {
  return createLogger(config.LOG_LEVEL, undefined, config.LOG_FORMAT);
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
