import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Running, startServer } from "../../src/server.js";
import {
  type ApiClient,
  expectInvalid,
  expectProblem,
  httpClient,
  leaksIn,
  recordingLogger,
} from "../helpers/api-client.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

const MiB = 1024 * 1024;
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"] as const;

/** Concrete values for a templated path from /openapi.json. */
const concrete = (path: string) =>
  path.replace("{id}", "dep_err").replace("{domain}", "err.example.com").replace("{location_id}", "err_1");

describe.each(DRIVERS)("API error answers over HTTP on %s", (driver) => {
  let tdb: TestDb;
  let server: Running;
  let api: ApiClient;
  const logger = recordingLogger();

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    server = await startServer(testConfig(), { handle: tdb.handle, logger });
    api = httpClient(server.url);
    expect((await api.post("/api/v1/deployments", { id: "dep_err", name: "err" })).status).toBe(201);
    await api.put("/api/v1/deployments/dep_err/routing", { domain: "err.example.com", target_port: 80 });
  });
  afterAll(async () => {
    await server?.close();
    await tdb?.close();
  });
  afterEach(() => {
    expect(api.faults).toEqual([]);
    expect(logger.errors).toEqual([]);
  });

  it("answers 400 MALFORMED_JSON for bodies that are not JSON, without the parser's message", async () => {
    const bodies = ["{", '{"name":}', "", "'name'", '{"name":"x",}', "NaN", "[".repeat(200_000)];
    for (const raw of bodies) {
      const r = await api.send("POST", "/api/v1/deployments", { raw, headers: { "content-type": "application/json" } });
      const p = expectProblem(r, 400, "MALFORMED_JSON");
      expect(p.detail).toBe("The request body is not valid JSON.");
    }
    const bytes = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff\xfe":1}
    const r = await api.send("PUT", "/api/v1/deployments/dep_err/routing", {
      raw: bytes,
      headers: { "content-type": "application/json" },
    });
    expect(r.status).toBe(400);
    expect(r.contentType).toBe("application/problem+json");
    // A UTF-8 byte order mark is not an error: the body is read as text first.
    const bom = await api.send("POST", "/api/v1/deployments", {
      raw: "\uFEFF{}",
      headers: { "content-type": "application/json" },
    });
    expectInvalid(bom, "body.name");
  });

  it("answers 400 (not 500) for JSON nested too deep to validate", async () => {
    const depth = 100_000;
    const raw = `{"name":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const r = await api.send("POST", "/api/v1/deployments", { raw, headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.contentType).toBe("application/problem+json");
  });

  it("answers 415 for a body that is not declared as JSON", async () => {
    for (const type of [
      undefined,
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const r = await api.send("POST", "/api/v1/deployments", {
        raw: '{"name":"x"}',
        headers: type ? { "content-type": type } : {},
      });
      expectProblem(r, 415, "UNSUPPORTED_MEDIA_TYPE");
    }
    const charset = await api.send("POST", "/api/v1/deployments", {
      raw: '{"name":"with charset"}',
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(charset.status).toBe(201);
  });

  it("answers 400 for unknown body fields, naming them, and ignores __proto__ tricks", async () => {
    const r = expectInvalid(
      await api.post("/api/v1/deployments/dep_err/domains", { domain: "x.example.com", owner: 1 }),
      "body",
    );
    expect(r.errors?.[0]?.message).toContain("owner");
    const proto = await api.send("PUT", "/api/v1/deployments/dep_err/routing", {
      raw: '{"__proto__":{"target_port":1},"constructor":{"prototype":{"x":1}}}',
      headers: { "content-type": "application/json" },
    });
    expect(proto.status).toBe(400);
    expect(({} as Record<string, unknown>).target_port).toBeUndefined();
  });

  it("answers 405 with an Allow header matching /openapi.json for every other method on every API path", async () => {
    const doc = (await api.get<{ paths: Record<string, Record<string, unknown>> }>("/openapi.json", { token: null }))
      .body;
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      const documented = Object.keys(ops).map((m) => m.toUpperCase());
      // Every path is behind its own token (the provider's for /traefik/config), so the 405 is what answers.
      const token = path === "/traefik/config" ? PROVIDER_TOKEN : undefined;
      for (const method of METHODS.filter((m) => !documented.includes(m))) {
        const r = await api.send(method, concrete(path), method === "GET" ? { token } : { token, json: {} });
        expectProblem(r, 405, "METHOD_NOT_ALLOWED");
        const allow = (r.headers.get("allow") ?? "").split(",").map((m) => m.trim());
        expect({ path, allow: allow.filter((m) => m !== "HEAD").sort() }).toEqual({ path, allow: documented.sort() });
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(30);
    for (const path of ["/traefik/config", "/healthz", "/readyz", "/openapi.json", "/docs", "/"]) {
      const r = await api.send("DELETE", path, { token: path === "/traefik/config" ? PROVIDER_TOKEN : null });
      expectProblem(r, 405, "METHOD_NOT_ALLOWED");
      expect(r.headers.get("allow")).toBe("GET, HEAD");
    }
  });

  it("answers 404 NOT_FOUND (about:blank) for unknown paths", async () => {
    for (const path of ["/api/v1/nope", "/api/v1/deployments/dep_err/routing/extra", "/api/v2/deployments", "/nope"]) {
      const p = expectProblem(await api.get(path), 404, "NOT_FOUND");
      expect(p.instance).toBe(path);
    }
  });

  it("requires a bearer token on every /api/v1 route; the provider token opens nothing there (403 naming the scope)", async () => {
    const doc = (await api.get<{ paths: Record<string, Record<string, unknown>> }>("/openapi.json", { token: null }))
      .body;
    const attempts: [string, SendAuth][] = [
      ["none", { token: null }],
      ["wrong token", { token: `${ADMIN_TOKEN}x` }],
      ["token prefix", { token: ADMIN_TOKEN.slice(0, -1) }],
      ["basic scheme", { token: null, headers: { authorization: `Basic ${ADMIN_TOKEN}` } }],
      ["bare token", { token: null, headers: { authorization: ADMIN_TOKEN } }],
      ["two tokens", { token: null, headers: { authorization: `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}` } }],
    ];
    const before = (await api.get<{ items: unknown[] }>("/api/v1/deployments?limit=500")).body.items;
    const adminPaths = Object.entries(doc.paths).filter(([path]) => path.startsWith("/api/v1/"));
    expect(adminPaths.length).toBeGreaterThanOrEqual(14);
    for (const [path, ops] of adminPaths) {
      for (const method of Object.keys(ops)) {
        for (const [label, auth] of attempts) {
          const r = await api.send(method.toUpperCase(), concrete(path), {
            ...auth,
            ...(method === "post" || method === "put" ? { json: { name: "x" } } : {}),
          });
          expect({ label, method, path, status: r.status }).toEqual({ label, method, path, status: 401 });
          expectProblem(r, 401, "UNAUTHORIZED");
          expect(r.headers.get("www-authenticate")).toBe('Bearer realm="admin-api"');
        }
        // A valid token without the operation's scope: 403, and the problem says which scope was missing.
        const scope = (ops[method] as { security: { apiToken: string[] }[] }).security[0]?.apiToken[0];
        const r = await api.send(method.toUpperCase(), concrete(path), {
          token: PROVIDER_TOKEN,
          ...(method === "post" || method === "put" ? { json: { name: "x" } } : {}),
        });
        expect({ method, path, status: r.status }).toEqual({ method, path, status: 403 });
        expect({ method, path, scope: expectProblem(r, 403, "FORBIDDEN").required_scope }).toEqual({
          method,
          path,
          scope,
        });
      }
    }
    // The scheme is case-insensitive (RFC 9110 §11.1).
    expect(
      (await api.get("/api/v1/deployments", { token: null, headers: { authorization: `bearer ${ADMIN_TOKEN}` } }))
        .status,
    ).toBe(200);
    // Nothing was written by the refused writes.
    expect((await api.get<{ items: unknown[] }>("/api/v1/deployments?limit=500")).body.items).toEqual(before);
  });

  it("answers GET / with an index of the service and GET /docs with the API reference, without a token", async () => {
    const index = await api.get("/", { token: null });
    expect({ status: index.status, contentType: index.contentType, body: index.body }).toEqual({
      status: 200,
      contentType: "application/json",
      body: {
        name: "obiente-router",
        version: expect.any(String),
        description: "Routing control plane for Traefik.",
        links: {
          docs: "/docs",
          openapi: "/openapi.json",
          traefik_config: "/traefik/config",
          healthz: "/healthz",
          readyz: "/readyz",
          api: "/api/v1",
        },
      },
    });
    const doc = await api.get<{ info: { version: string } }>("/openapi.json", { token: null });
    expect(index.body.version).toBe(doc.body.info.version);
    const docs = await api.get("/docs", { token: null });
    expect({ status: docs.status, contentType: docs.contentType }).toEqual({
      status: 200,
      contentType: "text/html; charset=UTF-8",
    });
    expect(docs.text).toContain("SwaggerUIBundle");
    expect(docs.text).toContain("/openapi.json");
    expect((await api.send("HEAD", "/docs", { token: null })).status).toBe(200);
  });

  it("the admin token does not open /traefik/config: it lacks the provider scope", async () => {
    const r = await api.get("/traefik/config", { token: ADMIN_TOKEN });
    expect(expectProblem(r, 403, "FORBIDDEN").required_scope).toBe("provider");
    const anonymous = await api.get("/traefik/config", { token: null });
    expectProblem(anonymous, 401, "UNAUTHORIZED");
    expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="traefik-provider"');
    expect((await api.get("/traefik/config", { token: PROVIDER_TOKEN })).status).toBe(200);
  });

  it("answers 413 BODY_TOO_LARGE for bodies over 1 MiB, declared or streamed", async () => {
    const big = JSON.stringify({ name: "x".repeat(MiB) });
    // Repeated on one keep-alive client: the refused connection must not take the next request down with it.
    for (let i = 0; i < 3; i++) {
      const declared = await api.send("POST", "/api/v1/deployments", {
        raw: big,
        headers: { "content-type": "application/json" },
      });
      expectProblem(declared, 413, "BODY_TOO_LARGE");
      expect((await api.get("/api/v1/deployments/dep_err")).status).toBe(200);
    }
    // Chunked, no Content-Length: the limit must count bytes as they arrive.
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) {
          controller.enqueue(new TextEncoder().encode('{"name":"'));
        }
        if (sent >= 2 * MiB) {
          controller.enqueue(new TextEncoder().encode('"}'));
          controller.close();
          return;
        }
        controller.enqueue(chunk);
        sent += chunk.length;
      },
    });
    const res = await fetch(`${server.url}/api/v1/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect({ status: res.status, type: res.headers.get("content-type") }).toEqual({
      status: 413,
      type: "application/problem+json",
    });
    expect(await res.json()).toMatchObject({ code: "BODY_TOO_LARGE", status: 413 });
    // Just under the limit is fine (and then a validation error, since the name is too long).
    const under = JSON.stringify({ name: "x".repeat(MiB - 100) });
    expectInvalid(
      await api.send("POST", "/api/v1/deployments", { raw: under, headers: { "content-type": "application/json" } }),
      "body.name",
    );
    // Without a token the answer is 401 before the body is read.
    const anon = await api.send("POST", "/api/v1/deployments", {
      raw: big,
      token: null,
      headers: { "content-type": "application/json" },
    });
    expect(anon.status).toBe(401);
  });

  it("echoes a sane X-Request-Id into the problem and replaces a hostile one", async () => {
    const sane = await api.get("/api/v1/deployments/dep_nobody", { headers: { "x-request-id": "trace-42.a_b" } });
    expect(expectProblem(sane, 404, "DEPLOYMENT_NOT_FOUND").requestId).toBe("trace-42.a_b");
    const hostile = await api.get("/api/v1/deployments/dep_nobody", { headers: { "x-request-id": "a b<script>" } });
    expect(expectProblem(hostile, 404, "DEPLOYMENT_NOT_FOUND").requestId).toMatch(/^req_[0-9a-f]{12}$/);
  });

  it("never answers with internals: leak patterns are caught by the harness itself", () => {
    // Guards the guard: these must be recognised, or every "no leak" check above would pass vacuously.
    expect(leaksIn("    at parseBody (/work/main/src/api/validate.ts:40:11)")).not.toEqual([]);
    expect(leaksIn('duplicate key value violates unique constraint "deployment_routing_domain_path_uq"')).not.toEqual(
      [],
    );
    expect(leaksIn("Unexpected token } in JSON at position 8")).not.toEqual([]);
    expect(leaksIn('{"detail":"The request body is not valid JSON."}')).toEqual([]);
  });
});

interface SendAuth {
  token: string | null;
  headers?: Record<string, string>;
}
