import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningProxy } from "../../src/proxy/server.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { listenOnLoopback } from "../helpers/loopback.js";
import { seedDeployment, startTestProxy } from "../helpers/test-proxy.js";

// Issue 10 #1, #2, #9: the proxy port attacked the way a tenant on the same network would, on loopback. Every
// case asserts what the attacker gets back AND what reached the replica (nothing, for the refused ones).

const SECRET = "attack-suite-secret-0123456789abcdef";
const KEY = "dGhlIHNhbXBsZSBub25jZQ=="; // RFC 6455 §1.3's sample key
const WRONG_ACCEPT = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/** A replica that records every request it parsed (Node's HTTP server) and echoes the headers it got. */
interface Replica {
  port: number;
  seen: { url: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

async function startReplica(): Promise<Replica> {
  const seen: Replica["seen"] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(req.headers));
  });
  return { seen, ...(await listenOnLoopback(server)) };
}

/**
 * A replica that answers an upgrade request the wrong way and then keeps the connection open, recording every
 * byte that arrives on it: `/ws-200` gets a plain 200, `/ws-bad-accept` a 101 with a wrong Sec-WebSocket-Accept.
 */
interface RawReplica {
  port: number;
  /** Everything received, per connection, in arrival order. */
  received: string[];
  /** Resolves when every connection it accepted so far has closed. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

async function startRawReplica(): Promise<RawReplica> {
  const received: string[] = [];
  const open = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    const i = received.push("") - 1;
    sockets.add(socket);
    open.add(new Promise<void>((resolve) => socket.on("close", () => resolve())));
    let answered = false;
    socket.on("data", (chunk: Buffer) => {
      received[i] += chunk.toString("latin1");
      if (answered || !received[i]?.includes("\r\n\r\n")) {
        return;
      }
      answered = true;
      socket.write(
        received[i]?.startsWith("GET /ws-bad-accept ")
          ? `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${WRONG_ACCEPT}\r\n\r\n`
          : "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nno",
      ); // and the connection stays open, reading on
    });
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    allClosed: async () => {
      await Promise.all([...open]);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) {
          s.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function send(port: number, path: string, headers: Record<string, string>, localAddress = "127.0.0.1"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers, agent: false, localAddress }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Writes `first` on a raw socket, waits until `firstAnswered` says the answer is complete, then writes `second`
 * on the same socket (if the proxy still lets it) and collects everything until the proxy closes the connection.
 */
function rawTwoRequests(port: number, first: string, second: string, firstAnswered: (s: string) => boolean) {
  return new Promise<string>((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the proxy kept the connection open; got ${JSON.stringify(out)}`));
    }, 5000);
    s.on("data", (c: Buffer) => {
      out += c.toString("latin1");
      if (!sent && firstAnswered(out)) {
        sent = true;
        s.write(second, () => {}); // may fail with EPIPE once the proxy has closed: that is the point
      }
    });
    s.on("error", () => {}); // a reset after the proxy closed is fine
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.write(first);
  });
}

const upgradeRequest = (path: string, deploymentId: string) =>
  `GET ${path} HTTP/1.1\r\nHost: ws.attack.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n` +
  `X-Obiente-Deployment: ${deploymentId}\r\nX-Obiente-Proxy-Secret: ${SECRET}\r\n\r\n`;

/** Smuggled after the upgrade: another path, another Host, forged routing headers. */
const SMUGGLED = "GET /../admin HTTP/1.1\r\nHost: victim.attack.test\r\nX-Obiente-Deployment: dep_rr\r\n\r\n";

describe.each(DRIVERS)("fallback proxy under attack on %s", (driver) => {
  let tdb: TestDb;
  let proxy: RunningProxy;
  let lc: Replica; // the least-cpu deployment's replica
  let rr: Replica; // a round-robin deployment's replica: never reachable through the proxy
  let raw: RawReplica;
  const port = () => Number(new URL(proxy.url).port);
  const edge = (deploymentId = "dep_lc") => ({
    "x-obiente-deployment": deploymentId,
    "x-obiente-proxy-secret": SECRET,
  });

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    [lc, rr, raw] = await Promise.all([startReplica(), startReplica(), startRawReplica()]);
    const add = (id: string, domain: string, loadBalancerAlgo: "least-conn" | "round-robin", targetPort: number) =>
      seedDeployment(tdb.handle.db, { id, domain, targetPort, loadBalancerAlgo, replicas: [{ id: `${id}_r1` }] });
    await add("dep_lc", "shop.attack.test", "least-conn", lc.port);
    await add("dep_rr", "victim.attack.test", "round-robin", rr.port);
    await add("dep_ws", "ws.attack.test", "least-conn", raw.port);
    proxy = await startTestProxy(tdb.handle, { secret: SECRET, refreshMs: 60_000, responseTimeoutMs: 2000 });
  });
  afterAll(async () => {
    await proxy?.close();
    await Promise.all([lc?.close(), rr?.close(), raw?.close()]);
    await tdb?.close();
  });

  it.each([
    ["no secret", { host: "shop.attack.test" }, 401],
    ["no secret, with the deployment header", { host: "shop.attack.test", "x-obiente-deployment": "dep_lc" }, 401],
    ["a wrong secret", { host: "shop.attack.test", ...{ "x-obiente-proxy-secret": "guess-guess-guess-guess" } }, 403],
    [
      "a wrong secret of the right length",
      {
        host: "shop.attack.test",
        "x-obiente-deployment": "dep_lc",
        "x-obiente-proxy-secret": SECRET.replace("a", "b"),
      },
      403,
    ],
  ])("a request with %s never reaches a replica and learns nothing", async (_, headers, status) => {
    const before = lc.seen.length + rr.seen.length;
    for (let i = 0; i < 5; i++) {
      const res = await send(port(), "/admin", headers);
      expect(res.status).toBe(status);
      expect(res.headers["content-type"]).toBe("application/problem+json");
      const body = JSON.parse(res.body) as Record<string, unknown>;
      expect(body.detail).toBe("This port serves requests forwarded by the edge proxy only.");
      expect(res.body).not.toContain("dep_");
      expect(res.body).not.toContain("attack.test");
      expect(res.body.toLowerCase()).not.toContain("x-obiente");
    }
    expect(lc.seen.length + rr.seen.length).toBe(before);
  });

  it("with the right secret, the Host of a round-robin deployment reaches nothing (no Host fallback, not indexed)", async () => {
    const before = rr.seen.length;
    const byHost = await send(port(), "/admin", { host: "victim.attack.test", "x-obiente-proxy-secret": SECRET });
    expect(byHost.status).toBe(400);
    const byHeader = await send(port(), "/admin", { host: "victim.attack.test", ...edge("dep_rr") });
    expect(byHeader.status).toBe(404);
    expect(JSON.parse(byHeader.body)).toMatchObject({ code: "DEPLOYMENT_NOT_FOUND" });
    expect(rr.seen.length).toBe(before);
    const routed = await send(port(), "/admin", { host: "victim.attack.test", ...edge() });
    expect(routed.status).toBe(200); // the least-cpu deployment named by the header, whatever the Host
    expect(lc.seen.at(-1)?.url).toBe("/admin");
  });

  it.each([
    "/..%2fadmin",
    "/static/..%2F..%2Fadmin",
    "/%2e%2e%2fadmin",
    "/static/..;/admin",
    "/static/..%5cadmin",
    "/static/%252e%252e/admin",
    "/static/%c0%ae%c0%ae/admin",
    "/static/%c0%ae%c0%ae%c0%afadmin",
    "/static/..\\admin",
    "/static/%ef%bc%8e%ef%bc%8e/admin",
  ])("a traversal spelled %s is refused with 400 INVALID_PATH and never reaches the replica", async (path) => {
    const before = lc.seen.length;
    const res = await send(port(), path, { host: "shop.attack.test", ...edge() });
    expect(res.status).toBe(400);
    expect(res.headers["content-type"]).toBe("application/problem+json");
    expect(JSON.parse(res.body)).toMatchObject({ status: 400, code: "INVALID_PATH", instance: path });
    expect(lc.seen.length).toBe(before);
  });

  it("Connection: host does not strip the Host header the replica routes on", async () => {
    const res = await send(port(), "/", {
      host: "shop.attack.test",
      connection: "host, x-hop",
      "x-hop": "1",
      ...edge(),
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as Record<string, string>;
    expect(seen.host).toBe("shop.attack.test");
    expect(seen["x-hop"]).toBeUndefined();
  });

  it("a forged X-Forwarded-For from an untrusted peer is replaced by the peer's address", async () => {
    const forged = {
      host: "shop.attack.test",
      "x-forwarded-for": "10.0.0.1",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "admin.internal",
      "x-forwarded-port": "443",
      "x-real-ip": "10.0.0.1",
      forwarded: "for=10.0.0.1;proto=https",
      ...edge(),
    };
    // 127.0.0.2 is loopback but not 127.0.0.1/::1, the only peers trusted when FALLBACK_TRUSTED_CIDRS is unset.
    const untrusted = JSON.parse((await send(port(), "/", forged, "127.0.0.2")).body) as Record<string, string>;
    expect(untrusted).toMatchObject({
      "x-forwarded-for": "127.0.0.2",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "shop.attack.test",
    });
    for (const h of ["x-forwarded-port", "x-real-ip", "forwarded", "x-obiente-proxy-secret", "x-obiente-deployment"]) {
      expect(untrusted[h]).toBeUndefined();
    }
    const trusted = JSON.parse((await send(port(), "/", forged)).body) as Record<string, string>;
    expect(trusted).toMatchObject({
      "x-forwarded-for": "10.0.0.1, 127.0.0.1",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "admin.internal",
      forwarded: "for=10.0.0.1;proto=https",
    });
  });

  it("an upgrade the replica answers with 200 is relayed and closed: a second request on the socket never travels unparsed", async () => {
    const before = raw.received.length;
    const out = await rawTwoRequests(port(), upgradeRequest("/ws-200", "dep_ws"), SMUGGLED, (s) => s.endsWith("no"));
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(out.toLowerCase()).toContain("connection: close\r\n");
    expect(out.endsWith("\r\n\r\nno")).toBe(true);
    await raw.allClosed();
    const got = raw.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^GET \/ws-200 HTTP\/1\.1\r\n/);
    expect(got[0]).not.toContain("/../admin");
    expect(got[0]).not.toContain("victim.attack.test");
  });

  it("a 101 with a wrong Sec-WebSocket-Accept becomes 502 and nothing else crosses", async () => {
    const before = raw.received.length;
    const out = await rawTwoRequests(port(), upgradeRequest("/ws-bad-accept", "dep_ws"), SMUGGLED, (s) =>
      s.includes("\r\n\r\n"),
    );
    expect(out).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(out).not.toContain("101");
    expect(out).not.toContain(WRONG_ACCEPT);
    expect(out).toContain('"code":"BAD_UPSTREAM"');
    await raw.allClosed();
    const got = raw.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]).not.toContain("/../admin");
  });

  it("an upgrade carrying a body is refused before any replica is dialled (it would hang or cross unparsed)", async () => {
    const before = raw.received.length;
    for (const framing of ["Content-Length: 10\r\n", "Transfer-Encoding: chunked\r\n"]) {
      const withBody = upgradeRequest("/ws-200", "dep_ws").replace("\r\n\r\n", `\r\n${framing}\r\n`);
      const out = await rawTwoRequests(port(), withBody, "0123456789", (s) => s.includes("}"));
      expect(out).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    }
    expect(raw.received.length).toBe(before);
  });

  it("an upgrade without a WebSocket key is refused before any replica is dialled", async () => {
    const before = raw.received.length;
    const out = await rawTwoRequests(
      port(),
      upgradeRequest("/ws-200", "dep_ws").replace(`Sec-WebSocket-Key: ${KEY}\r\n`, "").replace("websocket", "h2c"),
      SMUGGLED,
      (s) => s.includes("}"),
    );
    expect(out).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw.received.length).toBe(before);
  });
});
