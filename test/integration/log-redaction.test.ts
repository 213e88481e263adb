import { createHash } from "node:crypto";
import bcrypt from "bcryptjs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/lib/logger.js";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, testConfig } from "../helpers/app.js";
import { keyFragments, makeCert, pemBody } from "../helpers/certs.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

// Issue 10 §5: drizzle's error message lists every query parameter, and the server's own ("Failing row
// contains …") quotes the row. A failing write must log what failed (SQLSTATE, constraint, table, request id),
// never with which values.
const API_KEY = "sk_live_4f2c9a0b1d2e3f405162738495a6b7c8";
const PASSWORD = "correct-horse-battery-staple-91";
const BCRYPT_LINE = `bob:${bcrypt.hashSync("bob-secret-pass", 4).replace(/^\$2b\$/, "$2y$")}`;
const SHA_LINE = `carol:{SHA}${createHash("sha1").update("carol-secret-pass").digest("base64")}`;
const cert = makeCert({ sans: ["secret.example.com"] });

const SECRETS = [
  API_KEY,
  PASSWORD,
  BCRYPT_LINE.slice(4),
  BCRYPT_LINE.slice(-31), // the hash part alone, however it is quoted or escaped
  SHA_LINE.slice(6),
  pemBody(cert.certPem).slice(64, 128),
  ...keyFragments(cert.keyPem),
];

const middlewaresBody = {
  headers: { request: { "X-Api-Key": API_KEY } },
  basic_auth: { users: [{ username: "alice", password: PASSWORD }], htpasswd: [BCRYPT_LINE, SHA_LINE] },
};

describe.each(DRIVERS)("secrets stay out of the logs when a write fails on %s", (driver) => {
  let tdb: TestDb;
  let server: Running;
  const lines: string[] = [];

  const send = (method: string, path: string, body: unknown, requestId: string) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        "content-type": "application/json",
        "x-request-id": requestId,
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
  const logOf = (requestId: string) => lines.filter((l) => l.includes(requestId));
  const leaked = () => SECRETS.filter((s) => lines.some((l) => l.includes(s)));

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    server = await startServer(testConfig(), {
      handle: tdb.handle,
      logger: createLogger("debug", (l) => lines.push(l)),
    });
    expect((await send("POST", "/api/v1/deployments", { id: "dep_sec", name: "sec" }, "req-setup")).status).toBe(201);
    // Every row these tables would get is refused by the database itself, with the row quoted in its detail.
    for (const table of ["deployment_middlewares", "certificates"]) {
      await tdb.handle.db.execute(
        sql.raw(`alter table ${table} add constraint log_test_refuse check (created_at < '2000-01-01')`),
      );
    }
  });
  afterAll(async () => {
    await server?.close();
    await tdb?.close().catch(() => {}); // the last test closed the database already
  });

  it("a refused middleware write (custom header, htpasswd hashes) logs SQLSTATE, constraint and request id only", async () => {
    const r = await send("PUT", "/api/v1/deployments/dep_sec/middlewares", middlewaresBody, "req-mw-refused");
    expect(r.status).toBe(500);
    expect(await r.text()).not.toContain(API_KEY);
    const logged = logOf("req-mw-refused").join("\n");
    expect(logged).toContain('"sqlstate":"23514"');
    expect(logged).toContain('"constraint":"log_test_refuse"');
    expect(logged).toContain('"requestId":"req-mw-refused"');
    expect(leaked()).toEqual([]);
  });

  it("a refused certificate upload logs no part of the certificate or its key", async () => {
    const r = await send(
      "POST",
      "/api/v1/certificates",
      { cert_pem: cert.certPem, key_pem: cert.keyPem },
      "req-cert-refused",
    );
    expect(r.status).toBe(500);
    const logged = logOf("req-cert-refused").join("\n");
    expect(logged).toContain('"sqlstate":"23514"');
    expect(logged).toContain('"table":"certificates"');
    expect(leaked()).toEqual([]);
  });

  it("a write to a closed database answers 503 DATABASE_UNAVAILABLE with Retry-After and logs no secret", async () => {
    await tdb.handle.close();
    const r = await send("PUT", "/api/v1/deployments/dep_sec/middlewares", middlewaresBody, "req-db-closed");
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("5");
    expect(r.headers.get("content-type")).toBe("application/problem+json");
    expect(await r.json()).toMatchObject({ status: 503, code: "DATABASE_UNAVAILABLE", requestId: "req-db-closed" });
    expect(logOf("req-db-closed").join("\n")).toContain('"msg":"database unavailable"');
    expect(leaked()).toEqual([]);
  });
});
