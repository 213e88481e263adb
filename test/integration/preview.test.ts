import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { readChangeSeq } from "../../src/db/repo/snapshot.js";
import type { ConfigDiff, EntryChange } from "../../src/render/config-diff.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import type { PreviewWarning } from "../../src/render/preview-warnings.js";
import { expectInvalid, expectProblem, type ProblemJson, type Reply, type RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { makeCert, pemBody, unrelatedKey } from "../helpers/certs.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

interface OpAnswer {
  index: number;
  op: string;
  status: "accepted" | "rejected";
  problem?: ProblemJson;
  [extra: string]: unknown;
}
interface PreviewJson {
  operations: OpAnswer[];
  config: Record<string, unknown> | string;
  diff: ConfigDiff;
  warnings: PreviewWarning[];
}
type Op = Record<string, unknown>;

const PATH = "/api/v1/routing/preview";
const REDACTED_HASH = "$2y$10$REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDREDACTEDREDAC";
/** A shown config's certificate keys read "(secret)": Traefik's checker then sees a key "path" beside inline PEM. */
const REDACTED_KEY_WARNING = /one of certFile\/keyFile is inline PEM, the other a path/;

describe.each(DRIVERS)("POST /api/v1/routing/preview on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const routes = new Map<string, RoutingJson["domains"][number]>(); // by domain

  /** Every answer's config must be one Traefik accepts. */
  const preview = async (operations: Op[], query = ""): Promise<Reply<PreviewJson>> => {
    const r = await api.post<PreviewJson>(`${PATH}${query}`, { operations });
    if (r.status === 200) {
      const opts = { allowEmpty: true, acceptWarnings: [REDACTED_KEY_WARNING] };
      expect(traefikSchemaErrors(r.body.config, opts)).toEqual([]);
    }
    return r;
  };
  const ok = async (operations: Op[]): Promise<PreviewJson> => {
    const r = await preview(operations);
    expect(r.status).toBe(200);
    return r.body;
  };
  const nameOf = (domain: string) => {
    const r = routes.get(domain);
    if (!r) {
      throw new Error(`no route ${domain}`);
    }
    return routeName({ id: r.id, deploymentId: r.deployment_id });
  };
  /** The service a domain's routers point at: its deployment's one service. */
  const serviceOf = (domain: string) => deploymentServiceName(routes.get(domain)?.deployment_id ?? "");
  const entry = (d: ConfigDiff, section: EntryChange["section"], name: string) =>
    d.changes.find((c) => c.section === section && c.name === name);
  const codes = (p: PreviewJson) => p.warnings.map((w) => w.code);

  beforeAll(async () => {
    await srv.seedDeployment("dep_shop", { domain: "shop.example.com", target_port: 3000 });
    await srv.seedDeployment("dep_api", { domain: "api.example.com", target_port: 4000 });
    expect(
      (await api.post("/api/v1/deployments/dep_api/domains", { domain: "api.example.com", path_prefix: "/v2" })).status,
    ).toBe(201);
    await srv.seedDeployment("dep_wild", { domain: "*.apps.example.com", target_port: 5000 });
    await srv.seedDeployment("dep_blog", { domain: "blog.apps.example.com", target_port: 6000 });
    await srv.seedLocation("dep_shop", "loc_s1", { address: "10.0.0.1" });
    await srv.seedLocation("dep_api", "loc_a1", { address: "10.0.1.1" });
    await srv.seedLocation("dep_api", "loc_a2", { address: "10.0.1.2" });
    await srv.seedLocation("dep_wild", "loc_w1", { address: "10.0.2.1" });
    await srv.seedLocation("dep_blog", "loc_b1", { address: "10.0.3.1" });
    // No health checker in tests: mark the replicas healthy by hand, as a probe round would.
    await srv.db.execute(sql`update deployment_locations set health_status = 'healthy'`);
    await waitFor(async () => (await api.traefikConfig()).reply.text.includes("10.0.3.1"));
    for (const dep of ["dep_shop", "dep_api", "dep_wild", "dep_blog"]) {
      const view = (await api.get<RoutingJson>(`/api/v1/deployments/${dep}/routing`)).body;
      for (const r of view.domains) {
        routes.set(r.path_prefix === "/" ? r.domain : `${r.domain}${r.path_prefix}`, r);
      }
    }
  });

  it("answers 401 without the admin token, and with the provider token", async () => {
    expectProblem(await api.post(PATH, { operations: [] }, { token: null }), 401, "UNAUTHORIZED");
  });

  it("with no operations: an empty diff against the served config and no warnings", async () => {
    const p = await ok([]);
    expect(p.operations).toEqual([]);
    expect(p.diff.changes).toEqual([]);
    expect(p.warnings).toEqual([]);
    const served = (await api.traefikConfig()).config;
    expect(p.config).toEqual(served); // nothing secret in this one: shown as served
  });

  // Each case runs against the same seeded state: a preview writes nothing, so none sees another's changes.
  it("a changed path: the router's `rule` changes, and the old path becomes unreachable", async () => {
    const p = await ok([{ op: "put_routing", deployment_id: "dep_shop", body: { path_prefix: "/store" } }]);
    expect(p.operations).toEqual([{ index: 0, op: "put_routing", status: "accepted" }]);
    const router = entry(p.diff, "routers", nameOf("shop.example.com"));
    expect(router?.change).toBe("changed");
    expect(router?.fields).toContainEqual({
      path: "rule",
      before: "Host(`shop.example.com`)",
      after: "Host(`shop.example.com`) && PathPrefix(`/store`)",
    });
    expect(p.warnings).toEqual([
      expect.objectContaining({
        code: "ROUTES_UNREACHABLE",
        count: 1,
        routes: [{ host: "shop.example.com", path: "/", deployment_id: "dep_shop" }],
      }),
    ]);
  });

  it("removing a deployment's only replica: its service falls back to the 503 placeholder, with a warning", async () => {
    const p = await ok([{ op: "delete_location", deployment_id: "dep_shop", location_id: "loc_s1" }]);
    const service = entry(p.diff, "services", serviceOf("shop.example.com"));
    expect(service?.fields).toContainEqual({
      path: "loadBalancer.servers[0].url",
      before: "http://10.0.0.1:3000",
      after: "http://127.0.0.1:9",
    });
    expect(p.warnings).toEqual([expect.objectContaining({ code: "LAST_HEALTHY_REPLICA", deployment_id: "dep_shop" })]);
    expect(p.warnings[0]?.message).toContain("removes the last healthy replica of dep_shop");
  });

  it("marking one of two replicas unhealthy: the server list shrinks, no warning; both: the last-replica warning", async () => {
    const one = await ok([{ op: "mark_unhealthy", deployment_id: "dep_api", location_id: "loc_a1" }]);
    expect(one.operations[0]).toMatchObject({ status: "accepted", transition: true });
    const service = entry(one.diff, "services", serviceOf("api.example.com"));
    expect(service?.fields).toEqual([
      {
        path: "loadBalancer.servers",
        before: [{ url: "http://10.0.1.1:4000" }, { url: "http://10.0.1.2:4000" }],
        after: [{ url: "http://10.0.1.2:4000" }],
      },
    ]);
    expect(one.warnings).toEqual([]);
    const both = await ok([
      { op: "mark_unhealthy", deployment_id: "dep_api", location_id: "loc_a1", body: { reason: "HTTP 502" } },
      { op: "mark_unhealthy", deployment_id: "dep_api", location_id: "loc_a2" },
    ]);
    expect(codes(both)).toEqual(["LAST_HEALTHY_REPLICA"]);
  });

  it("an exact host under a wildcard: it moves to the new deployment and shadows the wildcard", async () => {
    const p = await ok([
      { op: "create_deployment", deployment_id: "dep_new", body: { name: "new" } },
      { op: "add_domain", deployment_id: "dep_new", body: { domain: "new.apps.example.com", target_port: 8080 } },
      { op: "upsert_location", deployment_id: "dep_new", location_id: "loc_n1", body: { address: "10.0.9.1" } },
    ]);
    expect(p.operations.map((o) => o.status)).toEqual(["accepted", "accepted", "accepted"]);
    expect(p.operations[0]).toMatchObject({ deployment_id: "dep_new" });
    const routeId = p.operations[1]?.route_id as string;
    const added = routeName({ id: routeId, deploymentId: "dep_new" });
    expect(p.diff.summary.byKind.routers?.added).toContain(added);
    expect(entry(p.diff, "routers", added)?.fields).toContainEqual({
      path: "rule",
      after: "Host(`new.apps.example.com`)",
    });
    expect(p.warnings).toContainEqual(
      expect.objectContaining({
        code: "HOST_MOVES",
        host: "new.apps.example.com",
        from_deployment_id: "dep_wild",
        to_deployment_id: "dep_new",
        message: "new.apps.example.com now resolves to dep_new instead of dep_wild",
      }),
    );
    expect(p.warnings).toContainEqual(
      expect.objectContaining({
        code: "WILDCARD_SHADOWED",
        host: "new.apps.example.com",
        wildcard: "*.apps.example.com",
      }),
    );
    // The new replica is not probed yet (health `unknown`): served by the 503 placeholder until it is.
    expect(JSON.stringify(p.config)).not.toContain("10.0.9.1");
  });

  it("removing an exact host under a wildcard: the wildcard's deployment takes it", async () => {
    const p = await ok([{ op: "remove_domain", deployment_id: "dep_blog", domain: "blog.apps.example.com" }]);
    expect(p.diff.summary.byKind.routers?.removed).toContain(nameOf("blog.apps.example.com"));
    expect(p.warnings).toEqual([
      expect.objectContaining({ code: "HOST_MOVES", from_deployment_id: "dep_blog", to_deployment_id: "dep_wild" }),
    ]);
  });

  it("deleting a deployment: its routers and services go, and its routes become unreachable", async () => {
    const p = await ok([{ op: "delete_deployment", deployment_id: "dep_api" }]);
    for (const d of ["api.example.com", "api.example.com/v2"]) {
      expect(p.diff.summary.byKind.routers?.removed).toContain(nameOf(d));
      expect(p.diff.summary.byKind.services?.removed).toContain(serviceOf(d));
    }
    expect(p.warnings).toEqual([
      expect.objectContaining({
        code: "ROUTES_UNREACHABLE",
        count: 2,
        message: "2 routes become unreachable (404): api.example.com, api.example.com/v2",
      }),
    ]);
  });

  it("basic auth: the chain changes, and neither the password nor its hash appears anywhere", async () => {
    const password = "correct horse battery staple";
    for (const format of ["", "?format=yaml"]) {
      const r = await preview(
        [
          {
            op: "put_middlewares",
            deployment_id: "dep_shop",
            body: { basic_auth: { users: [{ username: "alice", password }] } },
          },
        ],
        format,
      );
      expect(r.status).toBe(200);
      expect(r.text).not.toContain(password);
      // The one hash shown is the placeholder that says what it is (a well-formed bcrypt line matching nothing).
      expect(r.text.replaceAll(REDACTED_HASH, "")).not.toMatch(/\$2[aby]\$/);
      const router = entry(r.body.diff, "routers", nameOf("shop.example.com"));
      expect(router?.fields.map((f) => f.path)).toContain("middlewares");
      const mw = r.body.diff.changes.find((c) => c.section === "middlewares" && c.change === "added");
      expect(mw?.fields).toContainEqual({ path: "basicAuth.users", after: ["alice:(secret)"] });
      if (format) {
        expect(typeof r.body.config).toBe("string");
        expect(r.body.config).toContain(`alice:${REDACTED_HASH}`);
      }
    }
  });

  it("an uploaded certificate: a TLS entry named by its fingerprint, the key never shown", async () => {
    const cert = makeCert({ sans: ["shop.example.com"] });
    const r = await preview([{ op: "upload_certificate", body: { cert_pem: cert.certPem, key_pem: cert.keyPem } }]);
    expect(r.status).toBe(200);
    expect(r.body.operations[0]).toMatchObject({ status: "accepted", certificate_id: expect.stringMatching(/^crt_/) });
    const tls = entry(r.body.diff, "tls.certificates", `sha256:${cert.fingerprintSha256}`);
    expect(tls?.change).toBe("added");
    expect(tls?.fields).toContainEqual({ path: "keyFile", after: "(secret)" });
    expect(r.text).not.toContain("PRIVATE KEY");
    expect(r.text).not.toContain(privateScalar(cert.keyPem));
    const bad = await preview([
      { op: "upload_certificate", body: { cert_pem: cert.certPem, key_pem: unrelatedKey() } },
    ]);
    const real = await api.post("/api/v1/certificates", { cert_pem: cert.certPem, key_pem: unrelatedKey() });
    expect({ ...bad.body.operations[0]?.problem, requestId: undefined }).toEqual({
      ...(real.body as ProblemJson),
      requestId: undefined,
    });
  });

  it("a conflict is answered per operation exactly as the real endpoint answers it; later operations still run", async () => {
    const write = { domain: "api.example.com" };
    const p = await ok([
      { op: "add_domain", deployment_id: "dep_shop", body: write },
      { op: "add_domain", deployment_id: "dep_shop", body: { domain: "www.shop.example.com" } },
      { op: "create_deployment", body: { id: "dep_api", name: "again" } },
      { op: "delete_location", deployment_id: "dep_shop", location_id: "loc_none" },
    ]);
    expect(p.operations.map((o) => [o.op, o.status])).toEqual([
      ["add_domain", "rejected"],
      ["add_domain", "accepted"],
      ["create_deployment", "rejected"],
      ["delete_location", "rejected"],
    ]);
    const real = [
      await api.post("/api/v1/deployments/dep_shop/domains", write),
      await api.post("/api/v1/deployments", { id: "dep_api", name: "again" }),
      await api.delete("/api/v1/deployments/dep_shop/locations/loc_none"),
    ];
    const realBodies = real.map((r) => ({ ...(r.body as ProblemJson), requestId: undefined }));
    const previewBodies = [0, 2, 3].map((i) => ({ ...p.operations[i]?.problem, requestId: undefined }));
    expect(previewBodies).toEqual(realBodies);
    expect(realBodies.map((b) => [b.status, b.code])).toEqual([
      [409, "DOMAIN_CONFLICT"],
      [409, "DEPLOYMENT_EXISTS"],
      [404, "LOCATION_NOT_FOUND"],
    ]);
    // The accepted write after a refused one is in the config (the refusal rolled back only its own savepoint).
    expect(JSON.stringify(p.config)).toContain("www.shop.example.com");
  });

  it("invalid operations are refused one by one with the endpoint's 400; the valid ones still run", async () => {
    const p = await ok([
      { op: "launch_rockets", deployment_id: "dep_shop" },
      { op: "put_routing", deployment_id: "dep_shop", body: { target_port: 70000 } },
      { op: "add_domain", deployment_id: "Not An Id!", body: { domain: "x.example.com" } },
      { op: "delete_location", deployment_id: "dep_shop" },
      { op: "put_routing", deployment_id: "dep_shop", body: { protocol: "h2c" } },
    ]);
    expect(p.operations.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected", "rejected", "accepted"]);
    const locations = p.operations.map((o) => o.problem?.errors?.map((e) => e.location));
    expect(locations.slice(0, 4)).toEqual([
      ["operation.op"],
      ["body.target_port"],
      ["path.id"],
      ["operation.location_id"],
    ]);
    const real = await api.put("/api/v1/deployments/dep_shop/routing", { target_port: 70000 });
    expect({ ...p.operations[1]?.problem, requestId: undefined }).toEqual({
      ...(real.body as ProblemJson),
      requestId: undefined,
    });
    expect(JSON.stringify(p.config)).toContain("h2c://");
  });

  it("a malformed envelope is one 400 for the whole request", async () => {
    expectInvalid(await api.post(PATH, { operations: [{ deployment_id: "dep_shop" }] }), "body.operations[0].op");
    expectInvalid(await api.post(PATH, { ops: [] }), "body");
    expectInvalid(await api.post(PATH, {}), "body");
    expectInvalid(await api.post(PATH, { operations: [], state: { version: 1, deployments: [] } }), "body");
    expectInvalid(await api.post(`${PATH}?format=xml`, { operations: [] }), "query.format");
  });

  it("a state document: its apply is previewed as one operation with the diff apply would print", async () => {
    const dumped = await api.get<{ deployments: { id: string }[] }>("/api/v1/state");
    expect(dumped.status).toBe(200);
    // The file drops dep_api: with prune its routes go; without prune it is kept and nothing changes.
    const state = { ...dumped.body, deployments: dumped.body.deployments.filter((d) => d.id !== "dep_api") };
    const kept = await api.post<PreviewJson>(PATH, { state });
    expect(kept.status).toBe(200);
    expect(kept.body.operations).toEqual([
      expect.objectContaining({ index: 0, op: "apply_state", status: "accepted", summary_line: "no changes" }),
    ]);
    expect(kept.body.diff.changes).toEqual([]);
    const pruned = await api.post<PreviewJson>(PATH, { state, prune: true });
    expect(pruned.status).toBe(200);
    expect(pruned.body.operations[0]).toEqual(
      expect.objectContaining({
        op: "apply_state",
        status: "accepted",
        summary: { created: 0, updated: 0, deleted: 3 },
      }),
    );
    for (const d of ["api.example.com", "api.example.com/v2"]) {
      expect(pruned.body.diff.summary.byKind.routers?.removed).toContain(nameOf(d));
    }
    expect(codes(pruned.body)).toContain("ROUTES_UNREACHABLE");
    expect(traefikSchemaErrors(pruned.body.config, { allowEmpty: true })).toEqual([]);
    // Nothing was applied: the real state still lists dep_api.
    const after = await api.get<{ deployments: { id: string }[] }>("/api/v1/state");
    expect(after.body.deployments.map((d) => d.id)).toContain("dep_api");
  });

  it("an invalid state document is one 400 naming the place in the document", async () => {
    const bad = { version: 1, deployments: [{ id: "dep_x", name: "x", routing: { target_port: 0, domains: [] } }] };
    const r = await api.post(PATH, { state: bad });
    const p = expectProblem(r, 400, "VALIDATION_FAILED");
    expect(p.errors?.map((e) => e.location)).toContain("body.state.deployments[0].routing.target_port");
  });
});

/** Every row of every table, as text: a preview must leave all of them exactly as they were. */
async function allRows(db: ReturnType<typeof useApiServer>["db"]): Promise<Record<string, string>> {
  const tables = rowsOf<{ t: string }>(
    await db.execute(sql`select tablename as t from pg_tables where schemaname = 'public' order by 1`),
  ).map((r) => r.t);
  const out: Record<string, string> = {};
  for (const t of tables) {
    out[t] = JSON.stringify(rowsOf(await db.execute(sql.raw(`select * from "${t}" order by 1`))));
  }
  return out;
}

describe.each(DRIVERS)("a preview writes nothing on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  it("leaves every row, the change sequence and the served bytes, revision and hash as they were", async () => {
    await srv.seedDeployment("dep_a", { domain: "a.example.com", target_port: 3000 });
    await srv.seedDeployment("dep_b", { domain: "b.example.com", target_port: 3000 });
    await srv.seedLocation("dep_a", "loc_a1", { address: "10.0.0.1" });
    await srv.seedLocation("dep_b", "loc_b1", { address: "10.0.0.2" });
    await srv.db.execute(sql`update deployment_locations set health_status = 'healthy'`);
    await waitFor(async () => (await api.traefikConfig()).reply.text.includes("10.0.0.2"));

    const served = async () => {
      const { reply } = await api.traefikConfig();
      return {
        text: reply.text,
        revision: reply.headers.get("x-config-revision"),
        hash: reply.headers.get("x-config-hash"),
      };
    };
    const before = { rows: await allRows(srv.db), seq: await readChangeSeq(srv.db), served: await served() };
    expect(Object.keys(before.rows)).toContain("deployment_routing");

    const r = await api.post<PreviewJson>(PATH, {
      operations: [
        { op: "create_deployment", body: { id: "dep_c", name: "c" } },
        { op: "put_routing", deployment_id: "dep_c", body: { domain: "c.example.com", target_port: 80 } },
        { op: "add_domain", deployment_id: "dep_a", body: { domain: "www.a.example.com" } },
        { op: "put_routing", deployment_id: "dep_a", body: { target_port: 3001, load_balancer_algo: "ip-hash" } },
        { op: "put_middlewares", deployment_id: "dep_a", body: { rate_limit: { average: 10 } } },
        { op: "put_health_check", deployment_id: "dep_a", body: { path: "/ready" } },
        { op: "upsert_location", deployment_id: "dep_a", location_id: "loc_a2", body: { address: "10.0.0.3" } },
        { op: "mark_unhealthy", deployment_id: "dep_a", location_id: "loc_a1" },
        { op: "delete_location", deployment_id: "dep_b", location_id: "loc_b1" },
        { op: "remove_domain", deployment_id: "dep_b", domain: "b.example.com" },
        { op: "delete_deployment", deployment_id: "dep_b" },
        { op: "add_domain", deployment_id: "dep_c", body: { domain: "a.example.com" } }, // a conflict: rolled back
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.operations.map((o) => o.status)).toEqual([...Array(11).fill("accepted"), "rejected"]);
    expect(r.body.diff.summary.added).toBeGreaterThan(0);
    expect(r.body.diff.summary.removed).toBeGreaterThan(0);
    expect(r.body.diff.summary.changed).toBeGreaterThan(0);

    // Longer than CONFIG_REFRESH_SECONDS (0.2 s in testConfig): a change feed that saw anything has re-rendered.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect({ rows: await allRows(srv.db), seq: await readChangeSeq(srv.db), served: await served() }).toEqual(before);

    // The same kind of write for real does move the sequence and the bytes (the comparison above can fail).
    await api.put("/api/v1/deployments/dep_a/routing", { target_port: 3001 });
    await waitFor(async () => (await served()).hash !== before.served.hash);
    expect(await readChangeSeq(srv.db)).not.toBe(before.seq);
  });
});

/** The private scalar of a P-256 PKCS#8 key (after its 48-character shared header); the tail is the public key. */
function privateScalar(keyPem: string): string {
  return pemBody(keyPem).slice(48, 88);
}
