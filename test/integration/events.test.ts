import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { listEvents, recordEvent } from "../../src/db/repo/events.js";
import type { EventJson } from "../../src/events/view.js";
import { recordCertificateExpiry } from "../../src/tls/expiry.js";
import { expectInvalid } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { massDelete, revisions, seedPlatform } from "../helpers/revisions.js";

type Page = { items: EventJson[]; next_after: number | null; next_before: number | null };

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe.each(DRIVERS)("GET /api/v1/events on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const events = async (query = "") => {
    const r = await api.get<Page>(`/api/v1/events${query}`);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/json/);
    return r.body;
  };
  const report = async (dep: string, loc: string, reason: string) => {
    const r = await api.post(`/api/v1/deployments/${dep}/locations/${loc}/failures`, { reason });
    expect(r.status).toBe(202);
  };

  it("records a replica going unhealthy as replica.health_changed, with what its health history says", async () => {
    await srv.seedDeployment("dep_ev", { domain: "ev.example.com", target_port: 8080 });
    await srv.seedLocation("dep_ev", "loc_ev_1", { address: "10.20.0.1" });
    await report("dep_ev", "loc_ev_1", "HTTP 502 from upstream");
    const page = await events("?type=replica.health_changed&deployment_id=dep_ev");
    const history = await api.get<{ items: { from: string; to: string; reason: string; source: string }[] }>(
      "/api/v1/deployments/dep_ev/locations/loc_ev_1/events",
    );
    const [last] = history.body.items;
    expect(last).toBeDefined();
    expect(page).toEqual({
      items: [
        {
          id: expect.any(Number),
          at: expect.stringMatching(ISO),
          type: "replica.health_changed",
          deployment_id: "dep_ev",
          subject: "loc_ev_1",
          data: { from: last?.from, to: last?.to, reason: last?.reason, source: last?.source },
        },
      ],
      next_after: null,
      next_before: null,
    });
    expect(last).toMatchObject({ to: "unhealthy", source: "report" });
    // A report that changes nothing (still unhealthy) records no event.
    await api.post("/api/v1/deployments/dep_ev/locations/loc_ev_1/failures", {});
    expect((await events("?type=replica.health_changed&deployment_id=dep_ev")).items).toHaveLength(1);
  });

  it("records a replica that moved to a new address as starting over (unknown), in its history and as an event", async () => {
    await srv.seedDeployment("dep_mv", { domain: "mv.example.com", target_port: 8080 });
    await srv.seedLocation("dep_mv", "loc_mv", { address: "10.22.0.1" });
    await report("dep_mv", "loc_mv", "refused");
    // A heartbeat at the same address changes no health: no event.
    await srv.seedLocation("dep_mv", "loc_mv", { address: "10.22.0.1", cpu_usage: 12 });
    expect((await events("?deployment_id=dep_mv")).items.map((e) => e.data.to)).toEqual(["unhealthy"]);
    await srv.seedLocation("dep_mv", "loc_mv", { address: "10.22.0.2", port: 9000 });
    const moved = (await events("?deployment_id=dep_mv")).items.at(-1);
    expect(moved).toMatchObject({
      type: "replica.health_changed",
      subject: "loc_mv",
      data: { from: "unhealthy", to: "unknown", source: "registration" },
    });
    expect(String(moved?.data.reason)).toContain("10.22.0.2:9000");
    const history = await api.get<{ items: { to: string; source: string }[] }>(
      "/api/v1/deployments/dep_mv/locations/loc_mv/events",
    );
    expect(history.body.items.map((h) => [h.to, h.source])).toContainEqual(["unknown", "registration"]);
  });

  it("pages oldest first: next_after continues where a full page stopped", async () => {
    await srv.seedDeployment("dep_pg", { domain: "pg.example.com", target_port: 8080 });
    for (const n of [1, 2, 3]) {
      await srv.seedLocation("dep_pg", `loc_pg_${n}`, { address: `10.21.0.${n}` });
      await report("dep_pg", `loc_pg_${n}`, `failure ${n}`);
    }
    const all = await events("?deployment_id=dep_pg");
    expect(all.items.map((e) => e.subject)).toEqual(["loc_pg_1", "loc_pg_2", "loc_pg_3"]);
    const ids = all.items.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const first = await events("?deployment_id=dep_pg&limit=2");
    expect(first.items.map((e) => e.id)).toEqual(ids.slice(0, 2));
    expect(first.next_after).toBe(ids[1]);
    const second = await events(`?deployment_id=dep_pg&limit=2&after=${first.next_after}`);
    expect(second).toEqual({ items: all.items.slice(2), next_after: null, next_before: null });
    // Newest first, paged backwards with `before`: the same events in the opposite order.
    const newest = await events("?deployment_id=dep_pg&order=desc&limit=2");
    expect(newest.items.map((e) => e.id)).toEqual([...ids].reverse().slice(0, 2));
    expect(newest.next_before).toBe(ids[1]);
    const older = await events(`?deployment_id=dep_pg&order=desc&limit=2&before=${newest.next_before}`);
    expect(older).toEqual({ items: [all.items[0]], next_after: null, next_before: null });
    // `since` bounds by time.
    expect((await events("?deployment_id=dep_pg&since=2999-01-01T00:00:00Z")).items).toEqual([]);
    expect((await events("?deployment_id=dep_pg&since=2000-01-01T00:00:00Z")).items).toEqual(all.items);
  });

  it("records one config.revision per revision, naming its cause", async () => {
    await srv.seedDeployment("dep_rev", { domain: "rev.example.com", target_port: 8080 });
    const { items: revs } = await revisions(api);
    const byNumber = await waitFor(async () => {
      const evs = (await events("?type=config.revision&limit=1000")).items;
      const subjects = new Set(evs.map((e) => e.subject));
      return revs.every((r) => subjects.has(String(r.revision))) && evs;
    }, 15_000); // renders and their revisions follow the write; a loaded machine can take seconds
    expect(byNumber.map((e) => e.subject)).toEqual([...new Set(byNumber.map((e) => e.subject))]); // once each
    for (const r of revs) {
      const e = byNumber.find((x) => x.subject === String(r.revision));
      expect(e?.data).toEqual({
        cause: r.cause,
        actor: r.actor,
        detail: r.detail,
        held: r.held,
        added: r.summary.added,
        removed: r.summary.removed,
        changed: r.summary.changed,
      });
    }
  });

  it("records certificate.expiring once, then certificate.expired once", async () => {
    const cert = makeCert({ sans: ["expiring.example.com"], days: 5 });
    const up = await api.post<{ id: string }>("/api/v1/certificates", { cert_pem: cert.certPem, key_pem: cert.keyPem });
    expect(up.status).toBe(201);
    const days = srv.config.CERT_EXPIRY_WARN_DAYS;
    const now = new Date();
    // Two instances (or a restart) running the daily check record it once.
    await Promise.all([recordCertificateExpiry(srv.db, now, days), recordCertificateExpiry(srv.db, now, days)]);
    await recordCertificateExpiry(srv.db, now, days);
    const after = new Date(cert.notAfter.getTime() + 86_400_000);
    await recordCertificateExpiry(srv.db, after, days);
    await recordCertificateExpiry(srv.db, after, days);
    const evs = (await events("?type=certificate.expiring,certificate.expired")).items.filter(
      (e) => e.subject === up.body.id,
    );
    expect(evs.map((e) => [e.type, e.data])).toEqual([
      [
        "certificate.expiring",
        {
          not_after: cert.notAfter.toISOString(),
          days_left: Math.floor((cert.notAfter.getTime() - now.getTime()) / 86_400_000),
          sans: ["expiring.example.com"],
        },
      ],
      ["certificate.expired", { not_after: cert.notAfter.toISOString(), sans: ["expiring.example.com"] }],
    ]);
  });

  it("refuses unknown types and bad cursors", async () => {
    expectInvalid(await api.get("/api/v1/events?type=replica.health_changed,nope"), "query.type");
    expectInvalid(await api.get("/api/v1/events?after=-1"), "query.after");
    expectInvalid(await api.get("/api/v1/events?since=yesterday"), "query.since");
    expectInvalid(await api.get("/api/v1/events?limit=0"), "query.limit");
    expect((await api.get("/api/v1/events", { token: null })).status).toBe(401);
  });
});

describe.each(DRIVERS)("guard.held events on %s", (driver) => {
  const srv = useApiServer(driver);

  it("records guard.held once for the held revision, with the routers it would remove", async () => {
    const { api } = srv;
    const ids = await seedPlatform(api, "dep_gh", 12);
    await massDelete(srv.db, ids.slice(2));
    const held = await waitFor(async () => {
      const r = await api.get<{ guard: { held_revision: number; removed_router_names: string[] } | null }>(
        "/api/v1/routing/stats",
      );
      return r.body.guard ?? undefined;
    });
    const evs = await waitFor(async () => {
      const r = await api.get<Page>("/api/v1/events?type=guard.held");
      return r.body.items.length > 0 && r.body.items;
    });
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ type: "guard.held", subject: String(held.held_revision), deployment_id: null });
    expect([...((evs[0]?.data.removed_routers as string[]) ?? [])].sort()).toEqual(
      [...held.removed_router_names].sort(),
    );
    expect(evs[0]?.data.removed).toBeGreaterThan(0);
    // The held revision was recorded once (here: bytes seen before, so its config.revision says it was not held then).
    const recorded = (await api.get<Page>("/api/v1/events?type=config.revision&limit=1000")).body.items.filter(
      (e) => e.subject === String(held.held_revision),
    );
    expect(recorded).toHaveLength(1);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("event ids on PostgreSQL", () => {
  let tdb: TestDb | undefined;
  beforeAll(async () => {
    tdb = await makeTestDb("postgres");
  });
  afterAll(async () => {
    await tdb?.close();
  });

  it("become visible in id order: a second writer waits until the first commits", async () => {
    const db = tdb?.handle.db;
    if (!db) {
      throw new Error("no database");
    }
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const first = db.transaction(async (tx) => {
      await recordEvent(tx, { type: "token.created", subject: "first", data: {} });
      await held; // an open transaction that holds its event (and its id) uncommitted
    });
    const advisory = async (granted: boolean) =>
      rowsOf<{ n: number }>(
        await db.execute(
          sql`select count(*)::int as n from pg_locks
               where locktype = 'advisory' and objid = ${0x0b1e_e7e7} and granted = ${granted}
                 and database = (select oid from pg_database where datname = current_database())`,
        ),
      )[0]?.n ?? 0;
    await waitFor(async () => (await advisory(true)) > 0); // the first holds the events lock
    const second = recordEvent(db, { type: "token.created", subject: "second", data: {} });
    await waitFor(async () => (await advisory(false)) > 0); // the second waits for it
    expect(await listEvents(db, { limit: 10 })).toEqual([]); // nothing committed yet: no reader can skip ahead
    release();
    await Promise.all([first, second]);
    expect((await listEvents(db, { limit: 10 })).map((e) => e.subject)).toEqual(["first", "second"]);
  });
});
