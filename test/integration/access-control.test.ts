import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { TOKEN_SCOPES, type TokenScope } from "../../schema/enums.js";
import { apiTokens, auditLog, events } from "../../schema/tables.js";
import { buildApp } from "../../src/app-wiring.js";
import { loadConfig } from "../../src/config/env.js";
import { PROVIDER_TOKEN_FILE, withGeneratedTokens } from "../../src/config/secrets.js";
import { rowsOf } from "../../src/db/client.js";
import { pruneAudit } from "../../src/db/repo/audit.js";
import { ApiClient, expectProblem, recordingLogger } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { testConfig } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS, makeTestDb } from "../helpers/db.js";

interface CreatedToken {
  id: string;
  token: string;
  prefix: string;
  scopes: TokenScope[];
  last_used_at: string | null;
}

interface OpenApi {
  paths: Record<string, Record<string, { security?: { apiToken?: string[] }[] }>>;
}

/** What the README's table says each scope grants. */
const GRANTS: Record<TokenScope, TokenScope[]> = {
  read: ["read"],
  write: ["read", "write"],
  certificates: ["read", "certificates"],
  admin: ["read", "write", "certificates", "admin"],
  provider: ["provider"],
};

describe.each(DRIVERS)("scoped tokens on %s", (driver) => {
  const srv = useApiServer(driver, {}, { captureLogs: true });
  const { api } = srv;

  const newToken = async (body: Record<string, unknown>) => {
    const r = await api.post<CreatedToken>("/api/v1/tokens", body);
    expect(r.status).toBe(201);
    return r.body;
  };

  it("answers every operation for every scope as the scope table says: 403 naming the scope, else through", async () => {
    const doc = (await api.get<OpenApi>("/openapi.json", { token: null })).body;
    const tokens = await Promise.all(TOKEN_SCOPES.map((s) => newToken({ name: `only-${s}`, scopes: [s] })));
    const concrete = (path: string) =>
      path.replace(/\{(\w+)\}/g, (_, p: string) => (p === "n" || p === "a" || p === "b" ? "999999" : `nope-${p}`));
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const needed = op.security?.[0]?.apiToken?.[0] as TokenScope | undefined;
        if (!needed || path.endsWith("/stream")) {
          continue; // open endpoints (index, docs, probes, metrics); the SSE stream never ends
        }
        for (const t of tokens) {
          const scope = t.scopes[0] as TokenScope;
          const r = await api.send(method.toUpperCase(), concrete(path), {
            token: t.token,
            ...(method === "post" || method === "put" ? { json: {} } : {}),
          });
          const allowed = GRANTS[scope].includes(needed);
          const seen = { path, method, scope, refused: r.status === 403 && r.body?.code === "FORBIDDEN" };
          expect(seen).toEqual({ ...seen, refused: !allowed });
          expect(r.status).not.toBe(401);
          if (!allowed) {
            expect(expectProblem(r, 403, "FORBIDDEN").required_scope).toBe(needed);
          }
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(30 * TOKEN_SCOPES.length);
  });

  it("shows the secret once, stores only its hash, and never logs or lists it", async () => {
    const t = await newToken({ name: "ci", scopes: ["write"] });
    expect(t.token).toMatch(/^obr_[A-Za-z0-9_-]{43}$/);
    expect(t.token.startsWith(t.prefix)).toBe(true);
    expect((await api.get("/api/v1/deployments", { token: t.token })).status).toBe(200);
    const list = await api.get("/api/v1/tokens");
    const one = await api.get(`/api/v1/tokens/${t.id}`);
    expect(list.text).not.toContain(t.token);
    expect(one.text).not.toContain(t.token);
    const stored = JSON.stringify(await srv.db.select().from(apiTokens));
    const audit = JSON.stringify(await srv.db.select().from(auditLog));
    const evs = JSON.stringify(await srv.db.select().from(events));
    for (const text of [stored, audit, evs, srv.logs.join("\n")]) {
      expect(text).not.toContain(t.token);
      expect(text).not.toContain(t.token.slice(12)); // not even the part after the shown prefix
    }
    expect(evs).toContain("token.created");
  });

  it("refuses a revoked or expired token at once, and stamps last_used_at", async () => {
    const t = await newToken({ name: "short", scopes: ["read"] });
    expect((await api.get("/api/v1/deployments", { token: t.token })).status).toBe(200);
    const used = await api.get<CreatedToken>(`/api/v1/tokens/${t.id}`);
    expect(used.body.last_used_at).not.toBeNull();
    expect((await api.delete(`/api/v1/tokens/${t.id}`)).status).toBe(204);
    expectProblem(await api.get("/api/v1/deployments", { token: t.token }), 401, "UNAUTHORIZED");
    expectProblem(await api.delete(`/api/v1/tokens/${t.id}`), 404, "TOKEN_NOT_FOUND");
    expect((await api.get<{ items: { id: string }[] }>("/api/v1/tokens")).body.items.map((x) => x.id)).not.toContain(
      t.id,
    );
    const e = await newToken({ name: "soon", scopes: ["read"], expires_at: new Date(Date.now() + 1500).toISOString() });
    expect((await api.get("/api/v1/deployments", { token: e.token })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1600));
    expectProblem(await api.get("/api/v1/deployments", { token: e.token }), 401, "UNAUTHORIZED");
    const past = await api.post("/api/v1/tokens", { name: "x", scopes: ["read"], expires_at: "2001-01-01T00:00:00Z" });
    expectProblem(past, 400, "VALIDATION_FAILED");
  });

  it("a deployment-restricted token sees its own deployments only; others answer 404 like unknown ones", async () => {
    await srv.seedDeployment("tenant_b_1", { domain: "b1.example.com", target_port: 80 });
    const t = await newToken({ name: "tenant-a", scopes: ["write"], deployment_prefix: "tenant_a_" });
    const as = { token: t.token };
    expect((await api.post("/api/v1/deployments", { id: "tenant_a_1", name: "a1" }, as)).status).toBe(201);
    expectProblem(await api.post("/api/v1/deployments", { id: "tenant_b_2", name: "b2" }, as), 403, "TOKEN_RESTRICTED");
    expectProblem(await api.post("/api/v1/deployments", { name: "no id" }, as), 403, "TOKEN_RESTRICTED");
    const listed = await api.get<{ items: { id: string }[] }>("/api/v1/deployments?limit=500", as);
    expect(listed.body.items.map((d) => d.id)).toEqual(["tenant_a_1"]);
    const put = await api.put(
      "/api/v1/deployments/tenant_a_1/routing",
      { domain: "a1.example.com", target_port: 80 },
      as,
    );
    expect(put.status).toBe(200);
    // Another tenant's deployment and one that does not exist look exactly alike.
    for (const path of ["/api/v1/deployments/tenant_b_1", "/api/v1/deployments/tenant_b_1/routing"]) {
      const other = await api.get(path, as);
      const missing = await api.get(path.replace("tenant_b_1", "tenant_b_404"), as);
      expectProblem(other, 404, "DEPLOYMENT_NOT_FOUND");
      expect({ ...(other.body as object), instance: null, requestId: null }).toEqual({
        ...(missing.body as object),
        instance: null,
        requestId: null,
        detail: (other.body as { detail: string }).detail,
      });
    }
    expectProblem(
      await api.put("/api/v1/deployments/tenant_b_1/routing", { target_port: 81 }, as),
      404,
      "DEPLOYMENT_NOT_FOUND",
    );
    expectProblem(await api.delete("/api/v1/deployments/tenant_b_1", as), 404, "DEPLOYMENT_NOT_FOUND");
    expectProblem(await api.get("/api/v1/routing/stats", as), 403, "TOKEN_RESTRICTED");
    // Untouched.
    expect((await api.get<{ target_port: number }>("/api/v1/deployments/tenant_b_1/routing")).body.target_port).toBe(
      80,
    );
  });

  it("GET /api/v1/routing/config shows the served config, secrets redacted unless the token has the provider scope", async () => {
    const cert = makeCert({ sans: ["secret-shown.example.com"] });
    expect((await api.post("/api/v1/certificates", { cert_pem: cert.certPem, key_pem: cert.keyPem })).status).toBe(201);
    const served = await api.traefikDocument();
    const redacted = await api.get<{ config: unknown; secrets_shown: boolean; hash: string }>("/api/v1/routing/config");
    expect(redacted.status).toBe(200);
    expect(redacted.body.secrets_shown).toBe(false);
    expect(redacted.text).not.toContain("PRIVATE KEY");
    const both = await newToken({ name: "ops", scopes: ["read", "provider"] });
    const shown = await api.get<{ config: unknown; secrets_shown: boolean }>("/api/v1/routing/config", {
      token: both.token,
    });
    expect(shown.body.secrets_shown).toBe(true);
    expect(shown.body.config).toEqual(served);
    // The provider scope alone polls Traefik's endpoint too.
    const poller = await newToken({ name: "traefik-edge-2", scopes: ["provider"] });
    expect((await api.get("/traefik/config", { token: poller.token })).status).toBe(200);
  });
});

describe.each(DRIVERS)("the audit log on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  interface AuditJson {
    items: {
      token_id: string | null;
      token_name: string | null;
      client_address: string | null;
      request_id: string | null;
      operation: string;
      resource_type: string;
      resource_id: string | null;
      deployment_id: string | null;
      changes: { field: string; before: unknown; after: unknown }[];
    }[];
    next_cursor: number | null;
  }

  it("records who changed which fields, from where, under which request id", async () => {
    await srv.seedDeployment("dep_audit", { domain: "audit.example.com", target_port: 80 });
    const t = (await api.post<CreatedToken>("/api/v1/tokens", { name: "deployer", scopes: ["write"] })).body;
    const r = await api.put(
      "/api/v1/deployments/dep_audit/routing",
      { target_port: 8080 },
      { token: t.token, headers: { "x-request-id": "req-audit-1" } },
    );
    expect(r.status).toBe(200);
    const rows = (await api.get<AuditJson>("/api/v1/audit?deployment_id=dep_audit")).body.items;
    const row = rows.at(-1);
    expect(row).toMatchObject({
      token_id: t.id,
      token_name: "deployer",
      client_address: expect.stringMatching(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/),
      request_id: "req-audit-1",
      operation: "PUT /api/v1/deployments/{id}/routing",
      resource_type: "route",
      deployment_id: "dep_audit",
    });
    expect(row?.changes).toEqual([{ field: "routes[audit.example.com/].target_port", before: 80, after: 8080 }]);
    // Filters: by token (id or name), and paging.
    expect((await api.get<AuditJson>("/api/v1/audit?token=deployer")).body.items).toHaveLength(1);
    expect((await api.get<AuditJson>(`/api/v1/audit?token=${t.id}`)).body.items).toHaveLength(1);
    const first = await api.get<AuditJson>("/api/v1/audit?limit=1");
    expect(first.body.items).toHaveLength(1);
    const next = await api.get<AuditJson>(`/api/v1/audit?limit=500&after=${first.body.next_cursor}`);
    expect(next.body.items.length).toBeGreaterThan(1);
    expect((await api.get<AuditJson>("/api/v1/audit?since=2999-01-01T00:00:00Z")).body.items).toEqual([]);
    // A refused write leaves no row.
    const before = (await api.get<AuditJson>("/api/v1/audit?limit=500")).body.items.length;
    expect((await api.put("/api/v1/deployments/dep_audit/routing", { target_port: 0 })).status).toBe(400);
    expect((await api.get<AuditJson>("/api/v1/audit?limit=500")).body.items.length).toBe(before);
  });

  it("redacts basic-auth hashes and header values, and never stores a password", async () => {
    await srv.seedDeployment("dep_secret", { domain: "secret.example.com", target_port: 80 });
    const password = "correct-horse-battery-staple";
    const r = await api.put("/api/v1/deployments/dep_secret/middlewares", {
      basic_auth: { users: [{ username: "alice", password }] },
      headers: { request: { "X-Api-Key": "header-secret-value" } },
    });
    expect(r.status).toBe(200);
    const row = (await api.get<AuditJson>("/api/v1/audit?deployment_id=dep_secret")).body.items.at(-1);
    const text = JSON.stringify(row);
    expect(text).toContain("alice:<redacted>");
    expect(text).not.toContain(password);
    expect(text).not.toContain("$2y$");
    expect(text).not.toContain("header-secret-value");
    expect(row?.changes.map((c) => c.field)).toEqual(["middlewares.basic_auth", "middlewares.headers"]);
  });

  it("deletes rows past the retention period", async () => {
    await srv.db.insert(auditLog).values({
      at: new Date("2001-01-01T00:00:00Z"),
      method: "PUT",
      path: "/old",
      operation: "PUT /old",
      resourceType: "route",
      status: 200,
      changes: [],
    });
    const days = srv.config.AUDIT_RETENTION_DAYS;
    expect(await pruneAudit(srv.db, new Date(Date.now() - days * 86_400_000))).toBe(1);
    expect((await api.get<AuditJson>("/api/v1/audit?limit=500")).text).not.toContain('"/old"');
  });
});

describe.each(DRIVERS)("a write and its audit row on %s", (driver) => {
  it("commit together: when the audit row cannot be written, the write is undone", async () => {
    const tdb = await makeTestDb(driver);
    const config = testConfig();
    const logger = recordingLogger();
    const wiring = await buildApp(config, tdb.handle, { logger });
    try {
      const api = new ApiClient(async (path, init) => wiring.app.request(path, init));
      expect((await api.post("/api/v1/deployments", { id: "dep_atomic", name: "a" })).status).toBe(201);
      // The audit insert fails after the write ran in the same transaction (a stand-in for a crash between them).
      await tdb.handle.db.execute(
        sql.raw(`create function audit_fails() returns trigger language plpgsql as $$
          begin raise exception 'audit storage unavailable'; end $$`),
      );
      await tdb.handle.db.execute(
        sql.raw("create trigger audit_fails before insert on audit_log for each row execute function audit_fails()"),
      );
      const r = await api.post("/api/v1/deployments/dep_atomic/domains", {
        domain: "atomic.example.com",
        target_port: 80,
      });
      expect(r.status).toBe(500);
      const routes = rowsOf<{ n: number }>(
        await tdb.handle.db.execute(
          sql`select count(*)::int as n from deployment_routing where deployment_id = 'dep_atomic'`,
        ),
      );
      expect(routes[0]?.n).toBe(0);
      expect(logger.errors.map((e) => e.message)).toEqual(["unhandled error"]);
    } finally {
      await wiring.close();
      await tdb.close();
    }
  });
});

describe("the provider token on first start", () => {
  it("is generated once into DATA_DIR/provider-token (0600), printed once, read back later", () => {
    const dir = mkdtempSync(join(tmpdir(), "obiente-tokens-"));
    const env = { DATA_DIR: dir, LOG_LEVEL: "error" };
    const printed: string[] = [];
    const logger = recordingLogger();
    const first = withGeneratedTokens(loadConfig(env), logger, (l) => printed.push(l));
    const file = join(dir, PROVIDER_TOKEN_FILE);
    const token = readFileSync(file, "utf8").trim();
    expect(first.PROVIDER_TOKEN).toEqual([token]);
    expect(first.ADMIN_TOKEN[0]).not.toBe(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(printed.join("")).toContain(token);
    const again: string[] = [];
    const second = withGeneratedTokens(loadConfig(env), logger, (l) => again.push(l));
    expect(second.PROVIDER_TOKEN).toEqual([token]);
    expect(again).toEqual([]);
    const given = withGeneratedTokens(
      loadConfig({ ...env, PROVIDER_TOKEN: "given-provider-token-123" }),
      logger,
      () => {},
    );
    expect(given.PROVIDER_TOKEN).toEqual(["given-provider-token-123"]);
  });
});
