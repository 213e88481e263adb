import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Caller } from "../../src/api/identity.js";
import { systemClock } from "../../src/lib/clock.js";
import { consoleApp } from "../../src/ui/console.js";
import { SESSION_COOKIE, sealSession, sessionKeys } from "../../src/ui/session.js";
import { waitFor } from "../helpers/app.js";

// The console's SSE proxy (GET /ui/events/stream) against a fake API: what goes upstream, what comes back, and that
// a client going away cancels the upstream stream (which ends the API's event pump).

const TOKEN = "console-test-token-0123456789";
const caller: Caller = { tokenId: "env:admin", tokenName: "ADMIN_TOKEN", scopes: new Set(["read"]) };

function setup(answer: (path: string) => Response | undefined = () => undefined) {
  const certKey = randomBytes(32);
  const calls: { path: string; headers: Record<string, string>; signal: AbortSignal | undefined }[] = [];
  const upstream = { cancelled: false, pulls: 0 };
  const app = consoleApp({
    auth: { callerOf: async (t) => (t === TOKEN ? caller : undefined) },
    certKey,
    clock: systemClock,
    async request(path, init) {
      calls.push({
        path,
        headers: init.headers as Record<string, string>,
        signal: init.signal ?? undefined,
      });
      const canned = answer(path);
      if (canned) {
        return canned;
      }
      const enc = new TextEncoder();
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          upstream.pulls++;
          if (n === 0) {
            controller.enqueue(enc.encode("retry: 2000\n\n"));
          } else {
            await new Promise((r) => setTimeout(r, 20)); // an idle stream: a keep-alive now and then
            controller.enqueue(enc.encode(`id: ${n}\nevent: replica.health_changed\ndata: {"id":${n}}\n\n`));
          }
          n++;
        },
        cancel() {
          upstream.cancelled = true;
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
  });
  const cookie = `${SESSION_COOKIE}=${sealSession(sessionKeys(certKey), TOKEN, new Date())}`;
  return { app, calls, upstream, cookie };
}

describe("GET /ui/events/stream (the console's SSE proxy)", () => {
  it("passes type, deployment_id, last_event_id and Last-Event-ID upstream as the session's token, and streams the events", async () => {
    const { app, calls, cookie } = setup();
    const res = await app.request(
      "/events/stream?deployment_id=dep_a&type=replica.health_changed&last_event_id=40&after=99&limit=5",
      {
        headers: { cookie, "last-event-id": "41" },
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("cache-control")).toContain("no-cache");
    expect(calls).toHaveLength(1);
    // The page's mark (last_event_id) and a reconnect's header both go up: the API lets the header win.
    expect(calls[0]?.path).toBe(
      "/api/v1/events/stream?type=replica.health_changed&deployment_id=dep_a&last_event_id=40",
    );
    expect(calls[0]?.headers).toEqual({ "last-event-id": "41", authorization: `Bearer ${TOKEN}` });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes("id: 2\n")) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    expect(text).toMatch(/^retry: 2000\n\nid: 1\nevent: replica.health_changed\ndata: \{"id":1\}\n\n/);
    await reader.cancel();
  });

  it("cancels the upstream stream when the client cancels its body", async () => {
    const { app, calls, upstream, cookie } = setup();
    const res = await app.request("/events/stream", { headers: { cookie } });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    await waitFor(async () => upstream.cancelled, 2000);
    expect(calls[0]?.signal?.aborted).toBe(true);
    const pulls = upstream.pulls;
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.pulls).toBe(pulls); // nothing reads the upstream any more
  });

  it("cancels the upstream stream when the client's request is aborted (the connection closed)", async () => {
    const { app, upstream, cookie } = setup();
    const gone = new AbortController();
    const res = await app.request("/events/stream", { headers: { cookie }, signal: gone.signal });
    await (res.body as ReadableStream<Uint8Array>).getReader().read();
    gone.abort();
    await waitFor(async () => upstream.cancelled, 2000);
  });

  it("answers the API's refusal as it is (an EventSource then stops), and needs a session", async () => {
    const problem = JSON.stringify({ status: 400, code: "VALIDATION_FAILED" });
    const { app, cookie } = setup(
      () => new Response(problem, { status: 400, headers: { "content-type": "application/problem+json" } }),
    );
    const res = await app.request("/events/stream?type=nope", { headers: { cookie } });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.text()).toBe(problem);
    const anonymous = await app.request("/events/stream");
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get("location")).toBe("/ui/login");
  });
});
