/** Domain errors thrown by repo functions; the API maps them to problem responses. */
export class NotFound extends Error {
  constructor(
    readonly resource: string,
    readonly id: string,
  ) {
    super(`${resource} ${id} not found`);
    this.name = "NotFound";
  }
}

export class Conflict extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "Conflict";
  }
}

function pgCode(err: unknown): string | undefined {
  // Drivers and drizzle versions wrap differently: look at the error and its cause.
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

/** A query or transaction that got no answer within DB_QUERY_TIMEOUT_MS (client-side deadline). */
export class DatabaseTimeout extends Error {
  readonly code = "DB_TIMEOUT";
  constructor(readonly ms: number) {
    super(`no answer from the database within ${ms} ms`);
    this.name = "DatabaseTimeout";
  }
}

// postgres.js connection errors (src/errors.js) and Node socket errors.
const CONNECTION_CODES = new Set([
  "DB_TIMEOUT",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * True when the database could not be reached or did not answer in time (the request may succeed on retry):
 * connection errors and client deadlines, SQLSTATE class 08 (connection exception), 57014 (statement timeout),
 * 57P01-57P03 (shutdown, starting up), 57P05 and 25P03 (a session ended by an idle timeout), 53300 (too many
 * connections), and a closed embedded PGlite.
 */
/**
 * postgres.js 3.4.x writes to a connection whose socket is already gone when the server closes it at the wrong
 * moment (`TypeError: Cannot read properties of null (reading 'write')` in connection.js `nextWrite`; upstream
 * porsager/postgres#1154, #1208, unfixed in 3.4.9). It means "the database went away", nothing else.
 */
export function isClosedSocketWrite(err: unknown): boolean {
  // By shape, not instanceof: the test runner hands it over serialized from a worker process.
  const e = err as { name?: unknown; message?: unknown; stack?: unknown } | null;
  return (
    typeof e === "object" &&
    e !== null &&
    e.name === "TypeError" &&
    typeof e.message === "string" &&
    /reading 'write'/.test(e.message) &&
    typeof e.stack === "string" &&
    /[\\/]postgres[\\/](cjs[\\/])?src[\\/]connection\.js/.test(e.stack)
  );
}

export function isDatabaseUnavailable(err: unknown): boolean {
  if (isClosedSocketWrite(err)) {
    return true;
  }
  let e = err as { code?: unknown; message?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; e && depth < 5; depth++, e = e.cause as typeof e) {
    const code = typeof e.code === "string" ? e.code : "";
    // 25P03 / 57P05: the server ended a session that sat in a transaction (or idle) past its timeout, e.g. one whose
    // client waited out a frozen server (each API write is one transaction): the write was not applied; retry.
    if (
      CONNECTION_CODES.has(code) ||
      code.startsWith("08") ||
      /^57(014|P0[1235])$/.test(code) ||
      code === "53300" ||
      code === "25P03"
    ) {
      return true;
    }
    if (typeof e.message === "string" && /^PGlite is clos(ed|ing)$/.test(e.message)) {
      return true;
    }
  }
  return false;
}

export function isUniqueViolation(err: unknown): boolean {
  return pgCode(err) === "23505";
}

export function isForeignKeyViolation(err: unknown): boolean {
  return pgCode(err) === "23503";
}

/** Input that is well-formed but cannot be applied (e.g. a first route without a port). */
export class Invalid extends Error {
  constructor(
    readonly location: string,
    message: string,
  ) {
    super(message);
    this.name = "Invalid";
  }
}
