import { createHash } from "node:crypto";
import { type ClientRequest, request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connectionListed, isHopByHop } from "./headers.js";
import type { UpstreamFailure } from "./verdict.js";

export interface TunnelTarget {
  address: string;
  port: number;
  tls: boolean;
}

/**
 * Why a tunnel failed before anything reached the client (judged by upstreamVerdict); the client socket is left to
 * the caller.
 */
export type TunnelFailure = Extract<UpstreamFailure, { kind: "connect" | "timeout" | "closed" | "handshake" }>;

export interface TunnelOptions {
  /** The client's socket, handed over by the server's `upgrade` event. */
  client: Duplex;
  /** Bytes the client sent after the request head (the `upgrade` event's `head`): sent on only after a 101. */
  head: Buffer;
  /** Request target (origin-form, already checked). */
  path: string;
  /** Headers to send upstream, flat `[name, value, …]`, Host and the Connection/Upgrade pair included. */
  headers: string[];
  /** The client's Sec-WebSocket-Key: the replica's 101 must answer it. */
  webSocketKey: string;
  target: TunnelTarget;
  connectTimeoutMs: number;
  /** How long the upstream may take to answer the upgrade request (and, for a plain answer, between chunks). */
  responseTimeoutMs: number;
  /**
   * Once upgraded: the tunnel closes after this long without a byte in either direction (PROXY_WS_IDLE_TIMEOUT_MS).
   * Never the response timeout: a WebSocket stays open for as long as frames flow, however long that is.
   */
  idleTimeoutMs: number;
  /** Called at most once, before any upstream byte reached the client. */
  onFail(failure: TunnelFailure): void;
  /** Called once when the tunnel is gone, whatever the reason. */
  onClose(): void;
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** RFC 6455 §4.2.2: the Sec-WebSocket-Accept a server must send for `key`, base64(SHA-1(key + GUID)). */
export function webSocketAccept(key: string): string {
  return createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
}

/** RFC 6455 §4.1: a Sec-WebSocket-Key is the base64 of 16 bytes (24 characters ending in `==`). */
export function isWebSocketKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/**
 * Carries a WebSocket upgrade to a replica, parsing the replica's answer with Node's HTTP client. Bytes flow
 * both ways only after a `101` whose `Upgrade` is `websocket` and whose `Sec-WebSocket-Accept` answers the
 * client's key (RFC 6455 §4.1). Any other answer is relayed as a plain response with `Connection: close`, and
 * the client connection ends with it: nothing the client sends later travels unparsed (issue 10 #2).
 */
export function openTunnel(opts: TunnelOptions): { destroy(): void } {
  const { client, target } = opts;
  client.pause(); // nothing from the client reaches the replica before the handshake completes
  let state: "connecting" | "waiting" | "open" | "relaying" | "done" = "connecting";
  let upstream: Socket | undefined;

  const finish = () => {
    if (state !== "done") {
      state = "done";
      clearTimeout(timer);
      opts.onClose();
    }
  };
  const fail = (failure: TunnelFailure) => {
    if (state === "connecting" || state === "waiting") {
      req.destroy();
      finish();
      client.resume(); // what the client sent is discarded, and its close can be seen again
      opts.onFail(failure);
    }
  };
  const destroyAll = () => {
    req.destroy();
    upstream?.destroy();
    finish();
    client.destroy();
  };

  const send = target.tls ? httpsRequest : httpRequest;
  const req: ClientRequest = send({
    host: target.address,
    port: target.port,
    method: "GET",
    path: opts.path,
    headers: opts.headers,
    setHost: false, // Host is in `headers`, as the client sent it
    agent: false, // a connection of its own: it becomes the tunnel
    ...(target.tls
      ? { ALPNProtocols: ["http/1.1"], ...(isIP(target.address) === 0 ? { servername: target.address } : {}) }
      : {}),
  });

  let timer = setTimeout(() => {
    const err: Error & { code?: string } = new Error(`connect timeout after ${opts.connectTimeoutMs} ms`);
    err.code = "UND_ERR_CONNECT_TIMEOUT";
    fail({ kind: "connect", err });
  }, opts.connectTimeoutMs);

  req.once("socket", (socket: Socket) => {
    upstream = socket;
    socket.once(target.tls ? "secureConnect" : "connect", () => {
      if (state !== "connecting") {
        return;
      }
      state = "waiting";
      clearTimeout(timer);
      timer = setTimeout(() => fail({ kind: "timeout" }), opts.responseTimeoutMs);
      socket.setNoDelay(true);
    });
  });
  req.on("error", (err: Error & { code?: string }) => {
    if (state === "connecting") {
      fail({ kind: "connect", err });
    } else if (state === "waiting") {
      fail({ kind: "closed" });
    } else if (state !== "done") {
      destroyAll(); // the caller may still be writing its problem to the client after a failure
    }
  });

  req.on("upgrade", (res: IncomingMessage, socket: Socket, upHead: Buffer) => {
    if (state !== "waiting") {
      socket.destroy();
      return;
    }
    clearTimeout(timer);
    const accept = res.headers["sec-websocket-accept"];
    const upgrade = res.headers.upgrade;
    if (
      res.statusCode !== 101 ||
      upgrade?.toLowerCase() !== "websocket" ||
      accept !== webSocketAccept(opts.webSocketKey)
    ) {
      socket.destroy();
      fail({ kind: "handshake" });
      return;
    }
    state = "open";
    upstream = socket;
    let head = `HTTP/1.1 101 ${res.statusMessage || "Switching Protocols"}\r\n`;
    const raw = res.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    client.write(`${head}\r\n`);
    if (upHead.length > 0) {
      client.write(upHead);
    }
    if (opts.head.length > 0) {
      socket.write(opts.head);
    }
    socket.on("error", destroyAll);
    // Every byte either way passes through this socket (read from the replica, or written to it), and Node's
    // socket timeout restarts on both reads and writes: it fires only when the connection is idle both ways. Both
    // ends are then cut (the tunnel does not parse frames, so it cannot send a Close frame of its own).
    socket.setTimeout(opts.idleTimeoutMs, destroyAll);
    socket.on("close", () => {
      if (state === "open") {
        finish();
        client.end(() => client.destroy()); // flush what the upstream sent, then close
      }
    });
    socket.pipe(client);
    client.pipe(socket);
  });

  req.on("response", (res: IncomingMessage) => {
    if (state !== "waiting") {
      res.destroy();
      return;
    }
    clearTimeout(timer);
    if (res.statusCode === 101) {
      res.destroy(); // a 101 Node did not treat as an upgrade: nothing we can carry
      fail({ kind: "handshake" });
      return;
    }
    state = "relaying";
    client.write(plainResponseHead(res));
    res.socket.setTimeout(opts.responseTimeoutMs, destroyAll);
    res.on("error", destroyAll);
    res.on("end", () => {
      finish();
      upstream?.destroy(); // a connection opened for an upgrade is never reused
      client.end(() => client.destroy());
    });
    res.pipe(client, { end: false });
  });

  const clientGone = () => {
    if (state !== "done") {
      destroyAll();
    }
  };
  client.on("error", clientGone);
  client.on("close", clientGone);
  req.end();
  return { destroy: destroyAll };
}

/**
 * The head of a non-101 answer, relayed to the client as a plain response that closes the connection: hop-by-hop
 * headers dropped, the body framed by its Content-Length or else by the close (RFC 9112 §6.3).
 */
function plainResponseHead(res: IncomingMessage): string {
  const raw = res.rawHeaders;
  let connection: string | undefined;
  let chunked = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (name === "connection") {
      connection = connection === undefined ? raw[i + 1] : `${connection}, ${raw[i + 1]}`;
    } else if (name === "transfer-encoding") {
      chunked = true;
    }
  }
  const listed = connectionListed(connection);
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ""}\r\n`;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(name) || listed.includes(lower) || (chunked && lower === "content-length")) {
      continue;
    }
    head += `${name}: ${raw[i + 1]}\r\n`;
  }
  return `${head}connection: close\r\n\r\n`;
}
