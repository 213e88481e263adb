import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcess, inProcessApp, type Reply } from "../helpers/api-client.js";
import { PROVIDER_TOKEN, testConfig } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

type JsonSchema = Record<string, unknown>;
interface OperationDoc {
  operationId: string;
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean }[];
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, { content?: Record<string, { schema: JsonSchema }> }>;
}
interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, OperationDoc>>;
  components: { schemas: Record<string, JsonSchema> };
}

const toTemplate = (honoPath: string) => honoPath.replace(/:(\w+)/g, "{$1}");

describe.each(DRIVERS)("GET /openapi.json on %s", (driver) => {
  let tdb: TestDb;
  let app: InProcess;
  let doc: OpenApiDoc;
  let reply: Reply;

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    app = await inProcessApp(tdb.handle, testConfig());
    reply = await app.client.get("/openapi.json", { token: null });
    doc = reply.body as unknown as OpenApiDoc;
  });
  afterAll(async () => {
    app?.close();
    await tdb?.close();
  });

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ path, method, op })),
    );

  it("is served without a token as JSON and is a valid OpenAPI 3.1 document", async () => {
    expect(reply.status).toBe(200);
    expect(reply.contentType).toMatch(/^application\/json/);
    expect(doc.openapi).toMatch(/^3\.1\./);
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result).toEqual({ valid: true });
  });

  it("documents exactly the routes the app serves, method by method, /traefik/config and the probes included", () => {
    // Hono keeps every registered handler; "ALL" entries are middleware and the 405 fallbacks. The console's HTML
    // pages (/ui) are not API operations: they call the documented API themselves.
    const served = new Set(
      app.app.routes
        .filter((r) => r.method !== "ALL" && !r.path.startsWith("/ui"))
        .map((r) => `${r.method} ${toTemplate(r.path)}`),
    );
    expect(app.app.routes.some((r) => r.path.startsWith("/ui/"))).toBe(true);
    const documented = new Set(operations().map((o) => `${o.method.toUpperCase()} ${o.path}`));
    expect([...served].filter((x) => x.includes(" /api/v1/")).length).toBeGreaterThanOrEqual(14);
    expect({ undocumented: [...served].filter((x) => !documented.has(x)).sort() }).toEqual({ undocumented: [] });
    expect({ notServed: [...documented].filter((x) => !served.has(x)).sort() }).toEqual({ notServed: [] });
    for (const path of ["/", "/docs", "/openapi.json", "/healthz", "/readyz", "/traefik/config"]) {
      expect({ path, methods: Object.keys(doc.paths[path] ?? {}) }).toEqual({ path, methods: ["get"] });
    }
  });

  it("answers other methods with 405 and the Allow list of each documented path", async () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const methods = Object.keys(ops).map((m) => m.toUpperCase());
      const expected = methods.includes("GET") ? ["GET", "HEAD", ...methods.filter((m) => m !== "GET")] : methods;
      const url = path.replace(/\{(\w+)\}/g, "x");
      const token = path === "/traefik/config" ? PROVIDER_TOKEN : undefined;
      const r = await app.client.send("PATCH", url, { token, json: {} });
      expect({ path, status: r.status, allow: r.headers.get("allow")?.split(", ").sort() }).toEqual({
        path,
        status: 405,
        allow: expected.sort(),
      });
    }
  });

  it("requires `domain` in the POST …/domains body and describes its fields", () => {
    const op = doc.paths["/api/v1/deployments/{id}/domains"]?.post;
    const schema = op?.requestBody?.content["application/json"]?.schema as
      | { required?: string[]; properties?: Record<string, unknown>; additionalProperties?: unknown }
      | undefined;
    expect(op?.requestBody?.required).toBe(true);
    expect(schema?.required).toContain("domain");
    expect(schema?.required).not.toContain("path_prefix"); // defaults to "/"
    expect(Object.keys(schema?.properties ?? {})).toEqual(
      expect.arrayContaining(["domain", "path_prefix", "target_port"]),
    );
    expect(schema?.additionalProperties).toBe(false); // unknown fields are a 400, and the document says so
  });

  it("declares every path parameter, the scope each operation needs, a 401 and 403, and a unique operationId", () => {
    const ids = new Set<string>();
    for (const { path, method, op } of operations()) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const declared = (op.parameters ?? []).filter((p) => p.in === "path");
      expect({ path, method, params: declared.map((p) => p.name) }).toEqual({ path, method, params: inPath });
      expect(declared.every((p) => p.required)).toBe(true);
      expect(typeof op.operationId).toBe("string");
      expect(ids.has(op.operationId)).toBe(false);
      ids.add(op.operationId);
      if (path === "/traefik/config") {
        expect(op.security).toEqual([{ apiToken: ["provider"] }]);
        expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["401", "403"]));
        continue;
      }
      if (path === "/metrics") {
        expect(op.security).toEqual([{ metricsToken: [] }]);
        expect(Object.keys(op.responses)).toContain("401");
        continue;
      }
      if (!path.startsWith("/api/v1/")) {
        expect({ path, security: op.security }).toEqual({ path, security: undefined }); // open: index, docs, probes
        continue;
      }
      expect(op.security).toEqual([{ apiToken: [expect.stringMatching(/^(read|write|certificates|admin)$/)] }]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["401", "403"]));
      // A write never needs only `read` (the read-only POSTs, preview and state diff, excepted).
      const scope = (op.security as { apiToken: string[] }[])[0]?.apiToken[0];
      const readOnlyPost = path === "/api/v1/routing/preview" || path === "/api/v1/state/diff";
      if (method !== "get" && !readOnlyPost) {
        expect({ path, method, scope }).not.toEqual({ path, method, scope: "read" });
      }
    }
  });

  it("answers every documented operation with a documented status, and success bodies match their schemas", async () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const c = app.client;
    await c.post("/api/v1/deployments", { id: "dep_doc", name: "doc" });
    const values: Record<string, string> = { id: "dep_doc", domain: "doc.example.com", location_id: "doc_1" };
    const bodies: Record<string, unknown> = {
      "post /api/v1/deployments": { id: "dep_doc2", name: "doc2" },
      "put /api/v1/deployments/{id}/routing": { domain: "doc.example.com", target_port: 8080 },
      "post /api/v1/deployments/{id}/domains": { domain: "www.doc.example.com" },
      "put /api/v1/deployments/{id}/locations/{location_id}": { address: "10.0.0.1" },
      "post /api/v1/tokens": { name: "doc", scopes: ["read"] },
      "post /api/v1/webhooks": { url: "https://hooks.example.com/obiente", events: ["*"] },
    };
    const queries: Record<string, string> = { "get /api/v1/routing/resolve": "?host=doc.example.com" };
    // Writes, reads, the creates once more (a repeat answers 200 where the first answered 201: both must be
    // documented), then deletes; each step runs on the state the earlier ones left.
    const all = operations();
    const writes = all.filter((o) => o.method === "post" || o.method === "put");
    const repeated = writes.filter((o) => `${o.method} ${o.path}` !== "post /api/v1/deployments");
    const sequence = [
      ...writes,
      ...all.filter((o) => o.method === "get"),
      ...repeated,
      ...all.filter((o) => o.method === "delete"),
    ];
    const report: string[] = [];
    for (const { path, method, op } of sequence) {
      if (op.responses["200"]?.content?.["text/event-stream"]) {
        continue; // the SSE stream never ends (test/integration/events-stream.test.ts reads it)
      }
      const key = `${method} ${path}`;
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? "x") + (queries[key] ?? "");
      const body = bodies[key] ?? (method === "post" || method === "put" ? {} : undefined);
      const r = await c.send(method.toUpperCase(), url, body === undefined ? {} : { json: body });
      if (!(String(r.status) in op.responses)) {
        report.push(`${key} → undocumented ${r.status}: ${r.text.slice(0, 160)}`);
        continue;
      }
      const schema = op.responses[String(r.status)]?.content?.["application/json"]?.schema;
      if (r.status < 300 && schema && !ajv.validate(schema, r.body)) {
        report.push(`${key} → ${r.status} body does not match: ${ajv.errorsText(ajv.errors)}`);
      }
    }
    expect(report).toEqual([]);
    expect(app.client.faults).toEqual([]);
  });
});
