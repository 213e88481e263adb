import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventJson } from "../../src/events/view.js";
import { startServer } from "../../src/server.js";
import { recordingLogger } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, testConfig } from "../helpers/app.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { openSse, type SseClient } from "../helpers/webhook-sse.js";

const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe.each(DRIVERS)("GET /api/v1/events/stream on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const open: SseClient[] = [];
  const stream = async (query = "", headers: Record<string, string> = {}) => {
    const s = await openSse(`${srv.url}/api/v1/events/stream${query}`, { ...auth, ...headers });
    open.push(s);
    return s;
  };
  const fail = async (loc: string) => {
    expect((await api.post(`/api/v1/deployments/dep_sse/locations/${loc}/failures`, {})).status).toBe(202);
  };
  const parsed = (s: SseClient) => s.events.map((e) => ({ ...e, json: JSON.parse(e.data) as EventJson }));

  beforeAll(async () => {
    await srv.seedDeployment("dep_sse", { domain: "sse.example.com", target_port: 8080 });
    for (const n of [1, 2, 3, 4]) {
      await srv.seedLocation("dep_sse", `loc_sse_${n}`, { address: `10.30.0.${n}` });
    }
  });
  afterAll(() => {
    for (const s of open) {
      s.close();
    }
  });

  it("sends new events live with id, event and data, then resumes after Last-Event-ID", async () => {
    const live = await stream("?type=replica.health_changed");
    expect(live.status).toBe(200);
    expect(live.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(live.retry).toBe(2000);
    await fail("loc_sse_1");
    await fail("loc_sse_2");
    await live.waitForEvents(2);
    const [first, second] = parsed(live);
    const listed = (await api.get<{ items: EventJson[] }>("/api/v1/events?deployment_id=dep_sse")).body.items;
    expect([first?.json, second?.json]).toEqual(listed.slice(-2));
    expect(first).toMatchObject({ id: String(first?.json.id), event: "replica.health_changed" });
    expect(first?.json).toMatchObject({ subject: "loc_sse_1", deployment_id: "dep_sse" });
    expect(second?.json.subject).toBe("loc_sse_2");
    live.close();

    // Reconnecting with the first id replays the second, then carries on live.
    await fail("loc_sse_3");
    const resumed = await stream("?type=replica.health_changed", { "last-event-id": String(first?.json.id) });
    await resumed.waitForEvents(2);
    await fail("loc_sse_4");
    await resumed.waitForEvents(3);
    expect(parsed(resumed).map((e) => e.json.subject)).toEqual(["loc_sse_2", "loc_sse_3", "loc_sse_4"]);
    // ?last_event_id= does the same for clients that cannot set the header.
    const byQuery = await stream(`?type=replica.health_changed&last_event_id=${second?.json.id}`);
    await byQuery.waitForEvents(2);
    expect(parsed(byQuery).map((e) => e.json.subject)).toEqual(["loc_sse_3", "loc_sse_4"]);
  });

  it("filters by type and deployment", async () => {
    const other = await stream("?type=guard.held");
    const mine = await stream("?deployment_id=dep_sse", { "last-event-id": "0" });
    await mine.waitForEvents(4); // every health event of dep_sse so far, from the start
    expect(parsed(mine).every((e) => e.json.deployment_id === "dep_sse")).toBe(true);
    expect(other.events).toEqual([]);
  });

  it("refuses a bad Last-Event-ID and requires a token", async () => {
    const bad = await api.get("/api/v1/events/stream", { headers: { "last-event-id": "abc" } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: "VALIDATION_FAILED", errors: [{ location: "header.last-event-id" }] });
    expect((await api.get("/api/v1/events/stream", { token: null })).status).toBe(401);
  });
});

describe.each(DRIVERS)("event streams at server shutdown on %s", (driver) => {
  let tdb: TestDb | undefined;
  beforeAll(async () => {
    tdb = await makeTestDb(driver);
  });
  afterAll(async () => {
    await tdb?.close();
  });

  it("ends open streams so the server closes promptly", async () => {
    if (!tdb) {
      throw new Error("no database");
    }
    const running = await startServer(testConfig(), { handle: tdb.handle, logger: recordingLogger() });
    const a = await openSse(`${running.url}/api/v1/events/stream`, auth);
    const b = await openSse(`${running.url}/api/v1/events/stream?type=guard.held`, auth);
    const started = Date.now();
    await running.close();
    await Promise.all([a.ended, b.ended]);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
