import { randomBytes } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { webhookDeliveries, webhooks } from "../../schema/tables.js";
import { rowsOf } from "../../src/db/client.js";
import type { EventJson } from "../../src/events/view.js";
import { deliverRound, retryDelayMs, WEBHOOK_MAX_ATTEMPTS, webhookPoster } from "../../src/events/webhook-worker.js";
import { expectInvalid, expectProblem, recordingLogger } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { fakeClock } from "../helpers/replica.js";
import { useTwoInstances } from "../helpers/two-instances.js";
import { type Receiver, startReceiver, verifyWebhook } from "../helpers/webhook-receiver.js";

const KEY_HEX = randomBytes(32).toString("hex");
const certKey = Buffer.from(KEY_HEX, "hex");

interface WebhookJson {
  id: string;
  url: string;
  events: string[];
  created_at: string;
  created_by: string | null;
  last_event_id: number;
  pending_attempts: number;
  next_attempt_at: string | null;
  secret?: string;
}
interface DeliveryJson {
  id: number;
  event_id: number;
  attempt: number;
  at: string;
  status_code: number | null;
  ok: boolean;
  error: string | null;
  duration_ms: number;
}

describe.each(DRIVERS)("webhooks on %s", (driver) => {
  const clock = fakeClock();
  const srv = useApiServer(
    driver,
    { WEBHOOK_ALLOW_PRIVATE: "true", CERT_ENCRYPTION_KEY: KEY_HEX },
    { inProcess: true, captureLogs: true, start: { clock } },
  );
  const { api } = srv;
  const poster = webhookPoster(true);
  const receivers: Receiver[] = [];
  let replicas = 0;

  /** One delivery round as an instance runs it, on the test's clock. */
  const round = (post = poster.post) =>
    deliverRound({ db: srv.db, certKey, clock, logger: recordingLogger(), owner: "test-instance", post });
  const receiver = async () => {
    const r = await startReceiver();
    receivers.push(r);
    return r;
  };
  const create = async (body: Record<string, unknown>) => {
    const r = await api.post<WebhookJson>("/api/v1/webhooks", body);
    expect(r.status).toBe(201);
    return r;
  };
  /** A replica going unhealthy: one replica.health_changed event. */
  const healthEvent = async (): Promise<EventJson> => {
    const loc = `loc_wh_${++replicas}`;
    await srv.seedLocation("dep_wh", loc, { address: `10.40.${Math.floor(replicas / 200)}.${(replicas % 200) + 1}` });
    expect((await api.post(`/api/v1/deployments/dep_wh/locations/${loc}/failures`, {})).status).toBe(202);
    const r = await api.get<{ items: EventJson[] }>(`/api/v1/events?type=replica.health_changed&deployment_id=dep_wh`);
    const e = r.body.items.find((x) => x.subject === loc);
    if (!e) {
      throw new Error(`no event for ${loc}`);
    }
    return e;
  };
  const deliveries = async (id: string) => {
    const r = await api.get<{ items: DeliveryJson[]; next_before: number | null }>(`/api/v1/webhooks/${id}/deliveries`);
    expect(r.status).toBe(200);
    return r.body.items;
  };
  const webhook = async (id: string) => (await api.get<WebhookJson>(`/api/v1/webhooks/${id}`)).body;

  beforeAll(async () => {
    await srv.seedDeployment("dep_wh", { domain: "wh.example.com", target_port: 8080 });
  });
  afterEach(async () => {
    for (const w of (await api.get<{ items: WebhookJson[] }>("/api/v1/webhooks")).body.items) {
      expect((await api.delete(`/api/v1/webhooks/${w.id}`)).status).toBe(204);
    }
  });
  afterAll(async () => {
    await poster.close();
    for (const r of receivers) {
      await r.close();
    }
  });

  it("shows a generated secret once, never in reads, the database or the logs", async () => {
    const rx = await receiver();
    const created = await create({ url: rx.url, events: ["*"] });
    const { secret, ...view } = created.body;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.headers.get("location")).toBe(`/api/v1/webhooks/${view.id}`);
    expect(view).toEqual({
      id: expect.stringMatching(/^wh_[0-9a-z]{12}$/),
      url: rx.url,
      events: ["*"],
      created_at: expect.any(String),
      created_by: expect.any(String),
      last_event_id: expect.any(Number),
      pending_attempts: 0,
      next_attempt_at: null,
    });
    const got = await api.get(`/api/v1/webhooks/${view.id}`);
    expect(got.body).toEqual(view);
    const listed = await api.get("/api/v1/webhooks");
    expect(listed.body).toEqual({ items: [view] });
    for (const text of [got.text, listed.text, (await api.get("/openapi.json")).text, ...srv.logs]) {
      expect(text).not.toContain(secret);
    }
    for (const table of [sql`webhooks`, sql`audit_log`]) {
      const rows = rowsOf<Record<string, unknown>>(await srv.db.execute(sql`select * from ${table}`));
      expect(rows.length).toBeGreaterThan(0);
      expect(JSON.stringify(rows)).not.toContain(secret);
    }
    // A secret given by the caller is used as given (and shown back once).
    const given = await create({ url: rx.url, events: ["guard.held"], secret: "my-own-secret-0123456789" });
    expect(given.body.secret).toBe("my-own-secret-0123456789");
  });

  it("delivers signed JSON bodies in event order, each once, from its creation on", async () => {
    const before = await healthEvent(); // older than the webhook: not delivered
    const rx = await receiver();
    const { body: wh } = await create({ url: rx.url, events: ["replica.health_changed"] });
    expect(wh.last_event_id).toBeGreaterThanOrEqual(before.id);
    const sent = [await healthEvent(), await healthEvent(), await healthEvent()];
    const r = await round();
    expect(r.attempts).toBe(3);
    expect(rx.received.map((x) => JSON.parse(x.body))).toEqual(sent);
    for (const [i, x] of rx.received.entries()) {
      expect(x.method).toBe("POST");
      expect(x.path).toBe("/hook");
      expect(x.headers["content-type"]).toBe("application/json");
      expect(x.headers["x-obiente-event"]).toBe("replica.health_changed");
      expect(x.headers["x-obiente-delivery"]).toBe(String(sent[i]?.id));
      expect(x.headers["x-obiente-timestamp"]).toBe(String(Math.floor(clock.now().getTime() / 1000)));
      expect(verifyWebhook(wh.secret ?? "", x.headers, x.body, Math.floor(clock.now().getTime() / 1000))).toBe(true);
      expect(
        verifyWebhook("another-secret-0123456789", x.headers, x.body, Math.floor(clock.now().getTime() / 1000)),
      ).toBe(false);
    }
    expect((await round()).attempts).toBe(0); // nothing new: nothing sent twice
    expect(rx.received).toHaveLength(3);
    expect(await deliveries(wh.id)).toEqual(
      [...sent].reverse().map((e) => ({
        id: expect.any(Number),
        event_id: e.id,
        attempt: 1,
        at: clock.now().toISOString(),
        status_code: 200,
        ok: true,
        error: null,
        duration_ms: expect.any(Number),
      })),
    );
    const after = await webhook(wh.id);
    expect(after.pending_attempts).toBe(0);
    expect(after.last_event_id).toBeGreaterThanOrEqual(sent[2]?.id ?? Number.NaN); // past other types too
  });

  it("retries a failed delivery with backoff, keeping later events behind it", async () => {
    const rx = await receiver();
    const { body: wh } = await create({ url: rx.url, events: ["replica.health_changed"] });
    rx.answers = [500, 500];
    const e1 = await healthEvent();
    const e2 = await healthEvent();
    expect((await round()).attempts).toBe(1);
    expect(await webhook(wh.id)).toMatchObject({
      pending_attempts: 1,
      next_attempt_at: new Date(clock.now().getTime() + retryDelayMs(1)).toISOString(),
    });
    expect((await round()).attempts).toBe(0); // not due yet
    clock.advance(retryDelayMs(1) / 1000);
    expect((await round()).attempts).toBe(1); // second attempt: 500 again
    clock.advance(retryDelayMs(2) / 1000 - 0.5);
    expect((await round()).attempts).toBe(0);
    clock.advance(0.5);
    expect((await round()).attempts).toBe(2); // third attempt succeeds, then e2 goes out
    expect(deliveredIds(rx)).toEqual([e1.id, e1.id, e1.id, e2.id]);
    expect((await deliveries(wh.id)).map((d) => [d.event_id, d.attempt, d.status_code, d.ok, d.error])).toEqual([
      [e2.id, 1, 200, true, null],
      [e1.id, 3, 200, true, null],
      [e1.id, 2, 500, false, "HTTP 500"],
      [e1.id, 1, 500, false, "HTTP 500"],
    ]);
    expect(await webhook(wh.id)).toMatchObject({ pending_attempts: 0, next_attempt_at: null });
  });

  it("gives up on an event after the last attempt and moves on to the next", async () => {
    const rx = await receiver();
    const { body: wh } = await create({ url: rx.url, events: ["replica.health_changed"] });
    rx.fallback = 503;
    const doomed = await healthEvent();
    for (let n = 1; n <= WEBHOOK_MAX_ATTEMPTS; n++) {
      expect((await round()).attempts).toBe(1);
      clock.advance(retryDelayMs(n) / 1000);
    }
    const after = await webhook(wh.id);
    expect(after.pending_attempts).toBe(0);
    expect(after.last_event_id).toBeGreaterThanOrEqual(doomed.id);
    const attempts = await deliveries(wh.id);
    expect(attempts.map((d) => d.attempt)).toEqual(
      Array.from({ length: WEBHOOK_MAX_ATTEMPTS }, (_, i) => WEBHOOK_MAX_ATTEMPTS - i),
    );
    expect(attempts.every((d) => !d.ok && d.status_code === 503)).toBe(true);
    rx.fallback = 200;
    const next = await healthEvent();
    expect((await round()).attempts).toBe(1);
    expect(deliveredIds(rx).at(-1)).toBe(next.id);
  });

  it("passes over events it does not subscribe to", async () => {
    const rx = await receiver();
    const { body: wh } = await create({ url: rx.url, events: ["guard.held", "certificate.expired"] });
    const e = await healthEvent();
    expect((await round()).attempts).toBe(0);
    expect(rx.received).toEqual([]);
    expect((await webhook(wh.id)).last_event_id).toBeGreaterThanOrEqual(e.id);
    // "*" takes every type: exactly the events between its start and where its cursor stands now.
    const all = await receiver();
    const { body: star } = await create({ url: all.url, events: ["*"] });
    await healthEvent();
    await round();
    const cursor = (await webhook(star.id)).last_event_id;
    const listed = await api.get<{ items: EventJson[] }>(`/api/v1/events?after=${star.last_event_id}&limit=1000`);
    const expected = listed.body.items.filter((x) => x.id <= cursor);
    expect(all.received.map((x) => JSON.parse(x.body))).toEqual(expected);
    expect(expected.map((x) => x.type)).toContain("replica.health_changed");
  });

  it("checks the address again when delivering: a name now refused gets no connection", async () => {
    const rx = await receiver();
    const { body: wh } = await create({
      url: rx.url.replace("127.0.0.1", "localhost"),
      events: ["replica.health_changed"],
    });
    const strict = webhookPoster(false); // an instance without WEBHOOK_ALLOW_PRIVATE
    try {
      await healthEvent();
      expect((await round(strict.post)).attempts).toBe(1);
    } finally {
      await strict.close();
    }
    expect(rx.received).toEqual([]);
    const [d] = await deliveries(wh.id);
    expect(d).toMatchObject({ ok: false, status_code: null, attempt: 1 });
    expect(d?.error).toMatch(/^refused: localhost resolves to (127\.0\.0\.1|::1) is a loopback address/);
  });

  it("deletes a webhook with its deliveries", async () => {
    const rx = await receiver();
    const { body: wh } = await create({ url: rx.url, events: ["*"] });
    await healthEvent();
    await round();
    expect((await api.delete(`/api/v1/webhooks/${wh.id}`)).status).toBe(204);
    expectProblem(await api.get(`/api/v1/webhooks/${wh.id}`), 404, "WEBHOOK_NOT_FOUND");
    expectProblem(await api.get(`/api/v1/webhooks/${wh.id}/deliveries`), 404, "WEBHOOK_NOT_FOUND");
    expectProblem(await api.delete(`/api/v1/webhooks/${wh.id}`), 404, "WEBHOOK_NOT_FOUND");
    expect(await srv.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, wh.id))).toEqual([]);
  });

  it("validates the URL, the event types and a given secret", async () => {
    const ok = "http://127.0.0.1:9/hook";
    expectInvalid(await api.post("/api/v1/webhooks", { url: "ftp://example.com/x", events: ["*"] }), "body.url");
    expectInvalid(await api.post("/api/v1/webhooks", { url: "https://u:p@example.com/", events: ["*"] }), "body.url");
    expectInvalid(await api.post("/api/v1/webhooks", { url: "not a url", events: ["*"] }), "body.url");
    expectInvalid(
      await api.post("/api/v1/webhooks", { url: `https://example.com/${"a".repeat(2048)}`, events: ["*"] }),
      "body.url",
    );
    expectInvalid(await api.post("/api/v1/webhooks", { url: ok, events: [] }), "body.events");
    expectInvalid(await api.post("/api/v1/webhooks", { url: ok, events: ["nope"] }), "body.events[0]");
    expectInvalid(await api.post("/api/v1/webhooks", { url: ok, events: ["*"], secret: "short" }), "body.secret");
    // Cloud metadata stays refused with WEBHOOK_ALLOW_PRIVATE.
    const meta = expectProblem(
      await api.post("/api/v1/webhooks", { url: "http://169.254.169.254/latest", events: ["*"] }),
      400,
      "WEBHOOK_URL_REFUSED",
    );
    expect(meta.detail).toMatch(/metadata/);
    expect(await srv.db.select().from(webhooks)).toEqual([]);
  });
});

describe.each(DRIVERS)("webhook URLs without WEBHOOK_ALLOW_PRIVATE on %s", (driver) => {
  const srv = useApiServer(driver, {}, { inProcess: true });
  const { api } = srv;

  it.each([
    ["http://127.0.0.1:8080/hook", /127\.0\.0\.1 is a loopback address/],
    ["http://localhost:8080/hook", /localhost resolves to .* loopback/],
    ["http://[::1]:8080/hook", /::1 is a loopback address/],
    ["http://0x7f000001/hook", /127\.0\.0\.1 is a loopback address/],
    ["https://10.1.2.3/hook", /private address/],
    ["https://192.168.0.10/hook", /private address/],
    ["https://100.64.0.1/hook", /CGNAT/],
    ["http://169.254.169.254/latest/meta-data", /metadata/],
    ["http://metadata.google.internal/", /metadata/],
    ["http://[fe80::1]/hook", /link-local/],
    ["http://[::ffff:10.0.0.1]/hook", /private/],
  ])("refuses %s", async (url, reason) => {
    const p = expectProblem(await api.post("/api/v1/webhooks", { url, events: ["*"] }), 400, "WEBHOOK_URL_REFUSED");
    expect(p.detail).toMatch(reason);
    expect(p.errors).toEqual([{ location: "body.url", message: expect.stringMatching(reason) }]);
  });

  it("says how to allow a private receiver, and accepts a public address", async () => {
    const p = expectProblem(
      await api.post("/api/v1/webhooks", { url: "http://127.0.0.1:9/", events: ["*"] }),
      400,
      "WEBHOOK_URL_REFUSED",
    );
    expect(p.detail).toMatch(/WEBHOOK_ALLOW_PRIVATE=true/);
    expect((await api.post("/api/v1/webhooks", { url: "https://93.184.216.34/hook", events: ["*"] })).status).toBe(201);
  });
});

describe.skipIf(!process.env.DATABASE_URL)("webhooks with two instances on one PostgreSQL", () => {
  const two = useTwoInstances({ WEBHOOK_ALLOW_PRIVATE: "true", CERT_ENCRYPTION_KEY: KEY_HEX });
  let rx: Receiver | undefined;
  afterAll(async () => {
    await rx?.close();
  });

  it("delivers each event exactly once overall, in order", async () => {
    rx = await startReceiver();
    const created = await two.a.post<WebhookJson>("/api/v1/webhooks", {
      url: rx.url,
      events: ["replica.health_changed"],
    });
    expect(created.status).toBe(201);
    expect((await two.b.post("/api/v1/deployments", { id: "dep_two", name: "dep_two" })).status).toBe(201);
    const n = 16;
    for (let i = 0; i < n; i++) {
      const api = i % 2 === 0 ? two.a : two.b;
      expect(
        (await api.put(`/api/v1/deployments/dep_two/locations/loc_two_${i}`, { address: `10.50.0.${i + 1}` })).status,
      ).toBe(201);
      expect((await api.post(`/api/v1/deployments/dep_two/locations/loc_two_${i}/failures`, {})).status).toBe(202);
    }
    const all = (await two.a.get<{ items: EventJson[] }>("/api/v1/events?type=replica.health_changed&limit=1000")).body
      .items;
    const expected = all.filter((e) => e.id > created.body.last_event_id).map((e) => e.id);
    expect(expected).toHaveLength(n);
    const receiver = rx;
    await waitFor(async () => receiver.received.length >= expected.length, 20_000);
    await waitFor(
      async () =>
        (await two.b.get<WebhookJson>(`/api/v1/webhooks/${created.body.id}`)).body.last_event_id >=
        (expected.at(-1) ?? Number.NaN),
      10_000,
    );
    expect(deliveredIds(receiver)).toEqual(expected);
    const ok = await two.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, created.body.id));
    expect(ok.map((d) => Number(d.eventId)).sort((x, y) => x - y)).toEqual(expected);
    expect(ok.every((d) => d.ok)).toBe(true);
    expect(two.logger.errors).toEqual([]);
  });
});

function deliveredIds(r: Receiver): number[] {
  return r.received.map((x) => Number(x.headers["x-obiente-delivery"]));
}
