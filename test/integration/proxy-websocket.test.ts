import { createServer, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningProxy } from "../../src/proxy/server.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { listenOnLoopback } from "../helpers/loopback.js";
import { seedDeployment, startTestProxy } from "../helpers/test-proxy.js";
import { acceptUpgrade, readClientFrames, serverFrame } from "../helpers/ws-frames.js";

// WebSockets through the fallback proxy stay open for as long as frames flow either way, however much longer than
// PROXY_RESPONSE_TIMEOUT_MS that is, and close after PROXY_WS_IDLE_TIMEOUT_MS without a byte. The client is undici's
// WebSocket (Node 20 has no global one; undici is already a dependency), the replica a minimal RFC 6455 server.

const SECRET = "test-proxy-secret-0123456789abcdef";
const EDGE = { "x-obiente-deployment": "dep_ws", "x-obiente-proxy-secret": SECRET };
const RESPONSE_TIMEOUT_MS = 500;
const IDLE_TIMEOUT_MS = 1500;
/** Frames every 100 ms for 2 s: four response timeouts, each gap far below the idle timeout. */
const FRAMES = 20;
const FRAME_GAP_MS = 100;

/** A server text frame. */
const frame = (text: string) => serverFrame(text);

/** Calls `onMessage` for each client text frame (Close is answered by the helper). */
const readFrames = (socket: Duplex, onMessage: (text: string) => void) =>
  readClientFrames(socket, (payload) => onMessage(payload.toString()));

interface WsReplica {
  port: number;
  /** Replica-side sockets that have closed, by path. */
  closed: string[];
  close(): Promise<void>;
}

/**
 * `/push` sends a frame every 100 ms until the socket closes; `/sink` reads silently and answers `count` with how
 * many messages came before it; `/quiet` never sends anything.
 */
async function startWsReplica(): Promise<WsReplica> {
  const closed: string[] = [];
  const sockets = new Set<Duplex>();
  const server: Server = createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  server.on("upgrade", (req, socket: Duplex) => {
    acceptUpgrade(socket, String(req.headers["sec-websocket-key"]));
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    socket.on("end", () => socket.end()); // the proxy's side closed: close ours (http sockets allow half-open)
    socket.on("close", () => {
      sockets.delete(socket);
      closed.push(req.url ?? "");
    });
    if (req.url === "/push") {
      let n = 0;
      const timer = setInterval(() => socket.write(frame(`tick ${++n}`)), FRAME_GAP_MS);
      socket.on("close", () => clearInterval(timer));
      readFrames(socket, () => {});
    } else if (req.url === "/sink") {
      let received = 0;
      readFrames(socket, (text) => {
        if (text === "count") {
          socket.write(frame(String(received)));
        } else {
          received++;
        }
      });
    } else {
      readFrames(socket, () => {});
    }
  });
  const listening = await listenOnLoopback(server);
  return {
    closed,
    port: listening.port,
    close: () => {
      for (const s of sockets) {
        s.destroy(); // upgraded sockets are not the HTTP server's to close
      }
      return listening.close();
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a WebSocket through the proxy, as Traefik forwards it (deployment and secret headers added). */
async function openSocket(proxyUrl: string, path: string): Promise<{ ws: WebSocket; messages: string[] }> {
  const ws = new WebSocket(`${proxyUrl.replace("http://", "ws://")}${path}`, { headers: EDGE });
  const messages: string[] = [];
  ws.addEventListener("message", (e) => messages.push(String(e.data)));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket error")));
  });
  return { ws, messages };
}

const closedEvent = (ws: WebSocket) =>
  new Promise<number>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) {
      resolve(1006);
      return;
    }
    ws.addEventListener("close", (e) => resolve(e.code));
  });

describe.each(DRIVERS)("WebSockets through the fallback proxy on %s", (driver) => {
  let tdb: TestDb;
  let proxy: RunningProxy;
  let replica: WsReplica;

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    replica = await startWsReplica();
    await seedDeployment(tdb.handle.db, {
      id: "dep_ws",
      name: "ws",
      routeId: "rt_ws",
      domain: "ws.proxy.test",
      targetPort: replica.port,
      replicas: [{ id: "ws_r1" }],
    });
    proxy = await startTestProxy(tdb.handle, {
      secret: SECRET,
      responseTimeoutMs: RESPONSE_TIMEOUT_MS,
      wsIdleTimeoutMs: IDLE_TIMEOUT_MS,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await replica?.close();
    await tdb?.close();
  });

  it("keeps a WebSocket open while the replica pushes frames, far past the response timeout", async () => {
    const { ws, messages } = await openSocket(proxy.url, "/push");
    while (messages.length < FRAMES) {
      await sleep(FRAME_GAP_MS);
      expect(ws.readyState).toBe(WebSocket.OPEN);
    }
    expect(messages.slice(0, FRAMES)).toEqual(Array.from({ length: FRAMES }, (_, i) => `tick ${i + 1}`));
    ws.close();
    await closedEvent(ws);
  });

  it("keeps a WebSocket open while only the client sends, far past the response timeout", async () => {
    const { ws, messages } = await openSocket(proxy.url, "/sink");
    for (let i = 0; i < FRAMES; i++) {
      ws.send(`message ${i}`);
      await sleep(FRAME_GAP_MS);
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.send("count");
    while (messages.length === 0 && ws.readyState === WebSocket.OPEN) {
      await sleep(20);
    }
    expect(messages).toEqual([String(FRAMES)]); // the replica got every message, and its answer came back
    ws.close();
    await closedEvent(ws);
  });

  it("closes a WebSocket with no frames either way after PROXY_WS_IDLE_TIMEOUT_MS, on both sides", async () => {
    const { ws } = await openSocket(proxy.url, "/quiet");
    const closed = closedEvent(ws);
    await sleep(2 * RESPONSE_TIMEOUT_MS); // the response timeout bounds the 101 only, never the open socket
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await closed).toBe(1006); // cut, not a Close frame: the tunnel does not parse frames
    while (!replica.closed.includes("/quiet")) {
      await sleep(20);
    }
    expect(replica.closed).toContain("/quiet");
  });
});
