import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { type Running, startServer } from "../../src/server.js";
import { expectInvalid, expectProblem, httpClient, recordingLogger } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { type RevisionJson, revisions, served } from "../helpers/revisions.js";
import { useTwoInstances } from "../helpers/two-instances.js";

/** The environment's admin token is named ADMIN_TOKEN in revisions, freezes and audit rows. */
const ACTOR = "ADMIN_TOKEN";

describe.each(DRIVERS)("config revisions on %s", (driver) => {
  const srv = useApiServer(driver);

  it("records a revision only when the served bytes change, naming the API call and its caller", async () => {
    const { api } = srv;
    const start = await served(api);
    const before = await revisions(api);
    expect(before.items[0]).toMatchObject({ revision: start.revision, hash: start.hash, served_now: true });
    // A deployment without routes renders nothing new: no revision.
    expect((await api.post("/api/v1/deployments", { id: "dep_rev", name: "rev" })).status).toBe(201);
    expect(await served(api)).toMatchObject({ revision: start.revision, hash: start.hash });
    const put = await api.put("/api/v1/deployments/dep_rev/routing", { domain: "rev.example.com", target_port: 80 });
    expect(put.status).toBe(200);
    const after = await served(api);
    expect(after.revision).toBeGreaterThan(start.revision);
    expect(after.hash).not.toBe(start.hash);
    const list = await revisions(api);
    expect(list.items.length).toBe(before.items.length + 1);
    const newest = list.items[0] as RevisionJson;
    expect(newest).toMatchObject({
      revision: after.revision,
      hash: after.hash,
      cause: "api",
      actor: ACTOR,
      detail: "PUT /api/v1/deployments/:id/routing",
      bytes: Buffer.byteLength(after.text),
      held: false,
      served_now: true,
      confirmed_at: null,
    });
    expect(newest.first_served_at).not.toBeNull();
    expect(newest.summary.byKind.routers?.added).toEqual(after.routers.filter((r) => !start.routers.includes(r)));
    expect(list.items.find((r) => r.revision === start.revision)?.served_now).toBe(false);
    // The same write again leaves the bytes alone: still one revision more than before, same number served.
    await api.put("/api/v1/deployments/dep_rev/routing", { domain: "rev.example.com", target_port: 80 });
    expect((await served(api)).revision).toBe(after.revision);
    expect((await revisions(api)).items.length).toBe(list.items.length);
  });

  it("GET /revisions/{n} answers the bytes exactly as GET /traefik/config served them, JSON and YAML", async () => {
    const { api } = srv;
    const old = await served(api);
    const oldYaml = (await api.get("/traefik/config?format=yaml", { token: PROVIDER_TOKEN })).text;
    await api.put("/api/v1/deployments/dep_rev/routing", { path_prefix: "/v2" });
    const now = await served(api);
    expect(now.revision).not.toBe(old.revision);
    const json = await api.get(`/api/v1/routing/revisions/${old.revision}`);
    expect(json.status).toBe(200);
    expect(json.contentType).toBe("application/json; charset=utf-8");
    expect(json.text).toBe(old.text);
    expect(json.headers.get("x-config-hash")).toBe(old.hash);
    const yaml = await api.get(`/api/v1/routing/revisions/${old.revision}?format=yaml`);
    expect(yaml.contentType).toBe("application/yaml; charset=utf-8");
    expect(yaml.text).toBe(oldYaml);
    expect((await api.get(`/api/v1/routing/revisions/${now.revision}`)).text).toBe(now.text);
  });

  it("diffs two revisions with the preview's structured diff", async () => {
    const { api } = srv;
    const [b, a] = (await revisions(api)).items;
    const d = await api.get<{ from: number; to: number; summary: RevisionJson["summary"]; changes: unknown[] }>(
      `/api/v1/routing/revisions/${a?.revision}/diff/${b?.revision}`,
    );
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ from: a?.revision, to: b?.revision });
    expect(d.body.summary.changed).toBeGreaterThan(0); // the rule moved to /v2
    expect(JSON.stringify(d.body.changes)).toContain("/v2");
    const back = await api.get<{ summary: RevisionJson["summary"] }>(
      `/api/v1/routing/revisions/${b?.revision}/diff/${a?.revision}`,
    );
    expect(back.body.summary.changed).toBe(d.body.summary.changed);
  });

  it("pages newest first with ?before=, and answers problems for unknown or malformed numbers", async () => {
    const { api } = srv;
    const all = (await revisions(api)).items.map((r) => r.revision);
    expect(all).toEqual([...all].sort((x, y) => y - x));
    const first = await revisions(api, "?limit=1");
    expect(first.items.map((r) => r.revision)).toEqual(all.slice(0, 1));
    expect(first.next_before).toBe(all[0]);
    const second = await revisions(api, `?limit=1&before=${first.next_before}`);
    expect(second.items.map((r) => r.revision)).toEqual(all.slice(1, 2));
    expectProblem(await api.get("/api/v1/routing/revisions/999999"), 404, "REVISION_NOT_FOUND");
    expectProblem(await api.get("/api/v1/routing/revisions/1/diff/999999"), 404, "REVISION_NOT_FOUND");
    expectInvalid(await api.get("/api/v1/routing/revisions/abc"), "path.n");
    expectInvalid(await api.get("/api/v1/routing/revisions?limit=0"), "query.limit");
    expectProblem(await api.get("/api/v1/routing/revisions", { token: null }), 401, "UNAUTHORIZED");
  });
});

describe.each(DRIVERS)("revision retention on %s", (driver) => {
  const srv = useApiServer(driver, { REVISION_RETENTION: "10" });

  it("keeps the newest REVISION_RETENTION revisions and says a pruned one was pruned", async () => {
    const { api } = srv;
    await api.post("/api/v1/deployments", { id: "dep_ret", name: "ret" });
    const seen: number[] = [];
    for (let i = 1; i <= 14; i++) {
      await api.put("/api/v1/deployments/dep_ret/routing", { domain: `ret${i}.example.com`, target_port: 80 });
      seen.push((await served(api)).revision);
    }
    const kept = (await revisions(api)).items.map((r) => r.revision);
    expect(kept).toEqual(seen.slice(-10).reverse());
    const gone = seen[0] as number;
    const p = expectProblem(await api.get(`/api/v1/routing/revisions/${gone}`), 404, "REVISION_NOT_FOUND");
    expect(p.detail).toContain("pruned");
  });
});

describe.each(DRIVERS)("revision numbers across a restart on %s", (driver) => {
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await makeTestDb(driver);
  });
  afterAll(async () => {
    await tdb?.close();
  });

  it("serves the same number for the same state after a restart, and a larger one for the next change", async () => {
    const logger = recordingLogger();
    const start = () => startServer(testConfig(), { handle: tdb.handle, logger });
    let s: Running = await start();
    let api = httpClient(s.url);
    await api.post("/api/v1/deployments", { id: "dep_rs", name: "rs" });
    await api.put("/api/v1/deployments/dep_rs/routing", { domain: "rs.example.com", target_port: 80 });
    const before = await served(api);
    await s.close();
    s = await start();
    try {
      api = httpClient(s.url);
      const again = await served(api);
      expect(again).toMatchObject({ revision: before.revision, hash: before.hash });
      await api.put("/api/v1/deployments/dep_rs/routing", { path_prefix: "/next" });
      expect((await served(api)).revision).toBeGreaterThan(before.revision);
      expect([...api.faults, ...logger.errors]).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!process.env.DATABASE_URL)("two instances on one PostgreSQL database share revisions", () => {
  const two = useTwoInstances();

  it("serves one revision number for the same bytes on both, recorded once with the writer's cause", async () => {
    const { a, b, logger } = two;
    await a.post("/api/v1/deployments", { id: "dep_two", name: "two" });
    await a.put("/api/v1/deployments/dep_two/routing", { domain: "two.example.com", target_port: 80 });
    const onA = await served(a);
    const onB = await waitFor(async () => {
      const s = await served(b);
      return s.hash === onA.hash && s;
    });
    expect(onB.revision).toBe(onA.revision);
    expect(onB.text).toBe(onA.text);
    const rows = rowsOf<{ n: number; cause: string }>(
      await two.db.execute(
        sql`select count(*)::int as n, min(cause) as cause from config_revisions where hash = ${onA.hash}`,
      ),
    );
    expect(rows[0]).toEqual({ n: 1, cause: "api" });
    // And through B: A learns the same number.
    await b.put("/api/v1/deployments/dep_two/routing", { path_prefix: "/b" });
    const nextB = await served(b);
    const nextA = await waitFor(async () => {
      const s = await served(a);
      return s.hash === nextB.hash && s;
    });
    expect(nextA.revision).toBe(nextB.revision);
    expect(nextB.revision).toBeGreaterThan(onA.revision);
    expect([...a.faults, ...b.faults, ...logger.errors]).toEqual([]);
  });
});
