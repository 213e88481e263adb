import { createHash } from "node:crypto";
import bcrypt from "bcryptjs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/lib/logger.js";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { keyFragments, makeCert, pemBody } from "../helpers/certs.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { startReplica, type TestReplica } from "../helpers/replica.js";

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

// Issue 15: the whole log of a realistic run at debug, grepped for every secret it handled. Tokens (right and wrong),
// basic-auth passwords and hashes, a custom header value, an uploaded key, a CA bundle, the fallback proxy secret and
// the password in DATABASE_URL go through writes, polls, proxied requests, health probes, refused requests, a 500 and
// a database outage.
const PROXY_SECRET = "fallback-proxy-secret-5e1f0c2a9b7d";
const WRONG_TOKEN = "not-the-admin-token-7c1e2f3a4b5c6d";
const DB_PASSWORD = "db-pass-9f8e7d6c5b4a";
const caIssued = makeCert({ sans: ["ca-issued.example.com"], issuedByCa: true });
const caPem = caIssued.chainPem.slice(caIssued.chainPem.indexOf("-----BEGIN", 1));

/** The URL with a password: the local server's trust authentication ignores it, the driver still carries it. */
function withPassword(url: string): string {
  const u = new URL(url);
  u.password = DB_PASSWORD;
  return u.toString();
}

describe.each(DRIVERS)("the captured log of a full run on %s holds no secret", (driver) => {
  let tdb: TestDb;
  let server: Running;
  let replica: TestReplica;
  let fire: () => void = () => {};
  const lines: string[] = [];
  const secrets = [
    ...SECRETS,
    ADMIN_TOKEN,
    PROVIDER_TOKEN,
    WRONG_TOKEN,
    PROXY_SECRET,
    DB_PASSWORD,
    pemBody(caPem).slice(64, 128),
    ...keyFragments(caIssued.keyPem),
  ];
  const call = (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    replica = await startReplica("sec");
    const env: Record<string, string> = {
      LOG_LEVEL: "debug",
      HEALTH_ENABLED: "true",
      FALLBACK_ENABLED: "true",
      FALLBACK_PROXY_SECRET: PROXY_SECRET,
      PROXY_REFRESH_MS: "100",
    };
    // On PostgreSQL the server opens its own pool from DATABASE_URL, password included.
    const own = driver === "postgres" && tdb.url !== undefined;
    server = await startServer(testConfig(own ? { ...env, DATABASE_URL: withPassword(tdb.url ?? "") } : env), {
      ...(own ? {} : { handle: tdb.handle }),
      logger: createLogger("debug", (l) => lines.push(l)),
      schedule: (tick) => {
        fire = tick;
        return () => {};
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await replica?.close();
    await tdb?.close().catch(() => {});
  });

  it("writes, polls, proxied requests, probes, refused requests, a 500 and an outage log none of them", async () => {
    expect((await call("POST", "/api/v1/deployments", { id: "dep_full", name: "full" })).status).toBe(201);
    const routing = { domain: "full.example.com", target_port: replica.port, load_balancer_algo: "least-cpu" };
    expect((await call("PUT", "/api/v1/deployments/dep_full/routing", routing)).status).toBe(200);
    expect((await call("PUT", "/api/v1/deployments/dep_full/middlewares", middlewaresBody)).status).toBe(200);
    const loc = { address: "127.0.0.1", port: replica.port, cpu_usage: 5 };
    expect((await call("PUT", "/api/v1/deployments/dep_full/locations/dep_full_r1", loc)).status).toBe(201);
    const tls = { tls: { ca_pem: caPem, server_name: "replica.internal" } };
    expect((await call("PUT", "/api/v1/deployments/dep_full/health-check", tls)).status).toBe(200);
    const upload = { cert_pem: caIssued.chainPem, key_pem: caIssued.keyPem };
    expect((await call("POST", "/api/v1/certificates", upload)).status).toBe(201);

    // Refused: a wrong token, the same certificate again, a body that is not valid.
    expect((await call("GET", "/api/v1/deployments", undefined, WRONG_TOKEN)).status).toBe(401);
    expect((await call("POST", "/api/v1/certificates", upload)).status).toBe(409);
    const bad = { basic_auth: { users: [{ username: "x:y", password: PASSWORD }] } };
    expect((await call("PUT", "/api/v1/deployments/dep_full/middlewares", bad)).status).toBe(400);

    // Traefik polls (the config holds the hashes, the key and the proxy secret), then a request through the proxy.
    const polled = await call("GET", "/traefik/config", undefined, PROVIDER_TOKEN);
    expect(polled.status).toBe(200);
    expect(await polled.text()).toContain(PROXY_SECRET); // the secret really went through this run
    const viaProxy = () =>
      fetch(`${server.proxyUrl}/`, {
        headers: {
          "x-obiente-deployment": "dep_full",
          "x-obiente-proxy-secret": PROXY_SECRET,
          host: "full.example.com",
        },
      });
    await waitFor(async () => (await viaProxy()).status === 200, 10_000);
    const forged = await fetch(`${server.proxyUrl}/`, {
      headers: { "x-obiente-deployment": "dep_full", "x-obiente-proxy-secret": WRONG_TOKEN },
    });
    expect(forged.status).toBe(403);

    // Health probes, one failing; then a 500 with the secrets in the query parameters, and an outage.
    replica.mode = "fail";
    fire();
    await server.checker.runRound();
    await tdb.handle.db.execute(
      sql.raw(
        "alter table deployment_middlewares add constraint log_full_refuse check (created_at < '2000-01-01') not valid",
      ),
    );
    expect((await call("PUT", "/api/v1/deployments/dep_full/middlewares", middlewaresBody)).status).toBe(500);
    if (driver === "pglite") {
      await tdb.handle.close(); // the server's own handle: writes fail as during an outage
      expect((await call("PUT", "/api/v1/deployments/dep_full/middlewares", middlewaresBody)).status).toBe(503);
    }
    await server.close();

    expect(lines.some((l) => l.includes('"level":"debug"'))).toBe(true);
    expect(lines.some((l) => l.includes('"msg":"unhandled error"'))).toBe(true);
    const leaks = secrets.filter((s) => lines.some((l) => l.includes(s)));
    expect(leaks).toEqual([]);
  });
});
