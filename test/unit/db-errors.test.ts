import { describe, expect, it } from "vitest";
import { DatabaseTimeout, isClosedSocketWrite, isDatabaseUnavailable } from "../../src/db/errors.js";
import { createLogger, errorFields } from "../../src/lib/logger.js";

/** What drizzle throws: its message lists the query and every parameter; the driver's error is the cause. */
function drizzleError(cause: unknown, params: unknown[]): Error {
  const err = new Error(`Failed query: insert into "t" values ($1)\nparams: ${params.join(",")}`, { cause });
  Object.assign(err, { query: 'insert into "t" values ($1)', params });
  return err;
}

const pgError = (fields: Record<string, string>) => Object.assign(new Error(fields.message ?? "boom"), fields);

describe("which database failures answer 503 DATABASE_UNAVAILABLE", () => {
  it.each([
    ["a client deadline", new DatabaseTimeout(5000)],
    ["a connect timeout", Object.assign(new Error("write CONNECT_TIMEOUT 10.0.0.1:5432"), { code: "CONNECT_TIMEOUT" })],
    ["a refused connection", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })],
    ["a server shutting down (57P01)", pgError({ code: "57P01" })],
    ["a statement timeout (57014)", pgError({ code: "57014" })],
    ["a connection exception (08006)", pgError({ code: "08006" })],
    ["too many connections (53300)", pgError({ code: "53300" })],
    ["a session ended idle in its transaction (25P03)", pgError({ code: "25P03" })],
    ["a session ended idle (57P05)", pgError({ code: "57P05" })],
    ["a closed PGlite", new Error("PGlite is closed")],
  ])("%s, also wrapped by drizzle", (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
    expect(isDatabaseUnavailable(drizzleError(err, ["x"]))).toBe(true);
  });

  it.each([
    ["a unique violation", pgError({ code: "23505" })],
    ["a check violation", pgError({ code: "23514" })],
    ["a plain bug", new TypeError("x is undefined")],
  ])("not %s", (_name, err) => {
    expect(isDatabaseUnavailable(drizzleError(err, ["x"]))).toBe(false);
  });
});

describe("what a log line says about a failed write", () => {
  const secret = "sk_live_4f2c9a0b1d2e3f405162738495a6b7c8";

  it("keeps SQLSTATE, constraint and table, and drops every message that could quote a value", () => {
    const cause = pgError({
      code: "23514",
      message: `new row violates check constraint "c" (value ${secret})`,
      detail: `Failing row contains (dep_a, {"X-Api-Key": "${secret}"}).`,
      constraint_name: "c",
      table_name: "deployment_middlewares",
    });
    const fields = errorFields(drizzleError(cause, [secret]));
    expect(fields).toEqual({ name: "Error", sqlstate: "23514", constraint: "c", table: "deployment_middlewares" });
  });

  it("masks PEM blocks, htpasswd hashes, URL passwords and secret-named keys in any field", () => {
    const lines: string[] = [];
    const log = createLogger("debug", (l) => lines.push(l));
    const pem =
      "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";
    log.error(`failed with ${pem}`, {
      note: "postgres://app:hunter2-password@db:5432/x",
      line: "bob:$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
      authorization: `Bearer ${secret}`,
      nested: { params: [secret] },
      err: new Error(`opening ${pem}`),
    });
    const out = lines.join("");
    for (const leak of [secret, "hunter2-password", "MIGHAgEAMBMGByqGSM49", "abcdefghijklmnopqrstuu"]) {
      expect(out).not.toContain(leak);
    }
    expect(out).toContain("[PEM redacted]");
  });
});

describe("postgres.js's closed-socket write (porsager/postgres#1154)", () => {
  const thrown = (stackLine: string) => {
    const e = new TypeError("Cannot read properties of null (reading 'write')");
    e.stack = `TypeError: Cannot read properties of null (reading 'write')\n    at ${stackLine}`;
    return e;
  };

  it("counts as the database being unavailable (a 503, not a 500), also when serialized", () => {
    const e = thrown("nextWrite (file:///app/node_modules/postgres/src/connection.js:255:22)");
    expect(isClosedSocketWrite(e)).toBe(true);
    expect(isDatabaseUnavailable(e)).toBe(true);
    expect(isClosedSocketWrite({ name: e.name, message: e.message, stack: e.stack })).toBe(true);
    expect(isClosedSocketWrite(thrown("nextWrite (/app/node_modules/postgres/cjs/src/connection.js:255:22)"))).toBe(
      true,
    );
  });

  it("is not any other TypeError about write", () => {
    expect(isClosedSocketWrite(thrown("handler (file:///app/src/proxy/exchange.ts:10:3)"))).toBe(false);
    expect(isClosedSocketWrite(new Error("Cannot read properties of null (reading 'write')"))).toBe(false);
    expect(isDatabaseUnavailable(thrown("handler (file:///app/src/proxy/exchange.ts:10:3)"))).toBe(false);
  });
});
