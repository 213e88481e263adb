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
