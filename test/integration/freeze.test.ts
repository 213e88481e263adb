import { describe, expect, it } from "vitest";
import { type ApiClient, expectInvalid, expectProblem } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { revisions, served } from "../helpers/revisions.js";
import { useTwoInstances } from "../helpers/two-instances.js";

/** The environment's admin token is named ADMIN_TOKEN in revisions, freezes and audit rows. */
const ACTOR = "ADMIN_TOKEN";

interface FreezeJson {
  frozen: boolean;
  revision?: number;
  reason?: string;
  actor?: string | null;
  frozen_at?: string;
  waiting_revisions?: number;
  latest_revision?: number | null;
  warning?: string;
}

const route = (api: ApiClient, id: string, domain: string) =>
  api
    .post("/api/v1/deployments", { id, name: id })
    .then(() => api.put(`/api/v1/deployments/${id}/routing`, { domain, target_port: 80 }));

describe.each(DRIVERS)("freeze and rollback on %s", (driver) => {
  const srv = useApiServer(driver);

  it("pins every poll to the frozen revision while writes are accepted and recorded, then resumes", async () => {
    const { api } = srv;
    await route(api, "dep_f1", "f1.example.com");
    const pinned = await served(api);
    const frozen = await api.post<FreezeJson>("/api/v1/routing/freeze", {
      revision: pinned.revision,
      reason: "incident 42",
    });
    expect(frozen.status).toBe(200);
    expect(frozen.body).toMatchObject({
      frozen: true,
      revision: pinned.revision,
      reason: "incident 42",
      actor: ACTOR,
      waiting_revisions: 0,
    });
    expect(frozen.body.warning).toMatch(/NOT removed/);
    const writes = [
      () => api.put("/api/v1/deployments/dep_f1/routing", { path_prefix: "/x" }),
      () => route(api, "dep_f2", "f2.example.com"),
      () => api.post("/api/v1/deployments/dep_f1/domains", { domain: "www.f1.example.com" }),
      () => api.delete("/api/v1/deployments/dep_f1"),
    ];
    for (const write of writes) {
      expect((await write()).status).toBeLessThan(300);
      const now = await served(api);
      expect(now).toMatchObject({ revision: pinned.revision, hash: pinned.hash, frozen: String(pinned.revision) });
      expect(now.text).toBe(pinned.text);
    }
    const list = await revisions(api);
    const waiting = list.items.filter((r) => r.revision > pinned.revision);
    expect(waiting.length).toBeGreaterThanOrEqual(writes.length);
    expect(waiting.every((r) => r.first_served_at === null && !r.served_now)).toBe(true);
    const shown = await api.get<FreezeJson>("/api/v1/routing/freeze");
    expect(shown.body).toMatchObject({
      frozen: true,
      revision: pinned.revision,
      waiting_revisions: waiting.length,
      latest_revision: list.items[0]?.revision,
    });
    const stats = await api.get<{ freeze: unknown }>("/api/v1/routing/stats");
    expect(stats.body.freeze).toEqual({
      revision: pinned.revision,
      reason: "incident 42",
      actor: ACTOR,
      frozen_at: shown.body.frozen_at,
      waiting_revisions: waiting.length,
    });

    expect((await api.delete("/api/v1/routing/freeze")).status).toBe(204);
    const resumed = await served(api);
    expect(resumed.frozen).toBeNull();
    expect(resumed.revision).toBe(list.items[0]?.revision);
    expect(resumed.text).toContain("f2.example.com");
    expect(resumed.text).not.toContain("f1.example.com");
    expect((await api.get<FreezeJson>("/api/v1/routing/freeze")).body).toEqual({ frozen: false });
    expect((await api.get<{ freeze: unknown }>("/api/v1/routing/stats")).body.freeze).toBeNull();
    expect((await api.delete("/api/v1/routing/freeze")).status).toBe(204); // idempotent
  });

  it("rolls back by freezing to an earlier revision: Traefik gets that revision's bytes", async () => {
    const { api } = srv;
    const old = (await revisions(api)).items.find((r) => r.detail === "PUT /api/v1/deployments/:id/routing");
    if (!old) {
      throw new Error("no earlier routing revision");
    }
    const bytes = (await api.get(`/api/v1/routing/revisions/${old.revision}`)).text;
    expect((await api.post("/api/v1/routing/freeze", { revision: old.revision, reason: "roll back" })).status).toBe(
      200,
    );
    const now = await served(api);
    expect(now).toMatchObject({ revision: old.revision, hash: old.hash, frozen: String(old.revision) });
    expect(now.text).toBe(bytes);
    expect((await api.delete("/api/v1/routing/freeze")).status).toBe(204);
    expect((await served(api)).frozen).toBeNull();
  });

  it("refuses to freeze to a revision it does not have, and bad bodies, without freezing anything", async () => {
    const { api } = srv;
    expectProblem(
      await api.post("/api/v1/routing/freeze", { revision: 999999, reason: "x" }),
      404,
      "REVISION_NOT_FOUND",
    );
    expectInvalid(await api.post("/api/v1/routing/freeze", { revision: 1 }), "body.reason");
    expectInvalid(await api.post("/api/v1/routing/freeze", { revision: 0, reason: "x" }), "body.revision");
    expectInvalid(await api.post("/api/v1/routing/freeze", { revision: 1, reason: "  " }), "body.reason");
    expect((await api.get<FreezeJson>("/api/v1/routing/freeze")).body).toEqual({ frozen: false });
    expect((await served(api)).frozen).toBeNull();
  });
});

describe.skipIf(!process.env.DATABASE_URL)("a freeze on two instances on one PostgreSQL database", () => {
  const two = useTwoInstances();

  it("holds under a stream of writes on both instances, and both resume on the current state", async () => {
    const { a, b, logger } = two;
    await route(a, "dep_t0", "t0.example.com");
    const pinned = await served(a);
    expect((await a.post("/api/v1/routing/freeze", { revision: pinned.revision, reason: "two" })).status).toBe(200);
    await waitFor(async () => (await served(b)).frozen === String(pinned.revision));
    for (let i = 1; i <= 8; i++) {
      const writer = i % 2 === 0 ? a : b;
      expect((await route(writer, `dep_t${i}`, `t${i}.example.com`)).status).toBe(200);
      for (const client of [a, b]) {
        const now = await served(client);
        expect(now).toMatchObject({ revision: pinned.revision, frozen: String(pinned.revision) });
        expect(now.text).toBe(pinned.text);
      }
    }
    expect((await b.delete("/api/v1/routing/freeze")).status).toBe(204);
    const [ra, rb] = await Promise.all(
      [a, b].map((client) =>
        waitFor(async () => {
          const s = await served(client);
          return s.frozen === null && s.text.includes("t8.example.com") && s;
        }),
      ),
    );
    expect(ra?.hash).toBe(rb?.hash);
    expect(ra?.revision).toBe(rb?.revision);
    expect([...a.faults, ...b.faults, ...logger.errors]).toEqual([]);
  });
});
