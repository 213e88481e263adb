import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  type ClientHttp2Session,
  connect as connectH2,
  createServer as createH2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo, BlockList, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type Dispatcher, Pool } from "undici";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import type { ReplicaAllowList } from "../render/address.js";
import { Exchange, type ExchangeHost, H2Exchange, type H2ExchangeHost, isGrpc } from "./exchange.js";
import { isNamed, isRefusedPath } from "./headers.js";
import {
  answerClientError,
  type ProxyProblem,
  problems,
  sendProblem,
  sendStreamProblem,
  writeRawProblem,
} from "./problem.js";
import { type ListenForChanges, startRefresher } from "./refresher.js";
import { appendForwarding, type RequestScan, scanH2Request, scanRequest } from "./request.js";
import {
  type CpuReading,
  normalizeHost,
  type ProxySnapshot,
  RoutingTable,
  type TableBackend,
  type TableReplica,
} from "./table.js";
import { isTrustedPeer, LOOPBACK_PEERS, secretMatcher, trustedPeers } from "./trust.js";
import { isWebSocketKey, openTunnel } from "./tunnel.js";
import { httpFailure, type UpstreamFailure, upstreamVerdict } from "./verdict.js";

/** A failed connect to a replica, handed to the passive health path. */
export interface ReplicaFailure {
  deploymentId: string;
  replicaId: string;
  at: Date;
  /** e.g. `connection failed: ECONNREFUSED`. */
  error: string;
}

export interface ProxyOptions {
  port: number;
  host: string;
  /**
   * Reads the whole routing state: at start, on the empty payload or a (re)connect of the change feed, every
   * `fullRefreshMs`, and every `refreshMs` when there is no change feed to follow.
   */
  loadSnapshot: () => Promise<ProxySnapshot>;
  /**
   * Reads only these deployments' rows (a notification named them); a deployment missing from the result leaves
   * the table. Absent: a deployment's change reloads everything.
   */
  loadDeployments?: ((deploymentIds: readonly string[]) => Promise<ProxySnapshot>) | undefined;
  /**
   * Reads the CPU readings of these deployments' replicas (every `refreshMs`, only for the deployments in the table,
   * never when it is empty). Absent: every `refreshMs` reloads everything instead.
   */
  loadReadings?: ((deploymentIds: readonly string[]) => Promise<readonly CpuReading[]>) | undefined;
  /** Subscribes to the change feed (LISTEN); returns the unsubscribe. Optional: polling alone also works. */
  listen?: ListenForChanges | undefined;
  /** Records a replica the proxy could not connect to (the passive failure path). */
  reportFailure: (failure: ReplicaFailure) => Promise<void>;
  /** The value Traefik's headers middleware sends in X-Obiente-Proxy-Secret; every request must carry it. */
  secret: string;
  /**
   * FALLBACK_TRUSTED_CIDRS. When set, only these peers are served (CIDR ranges or addresses) and their
   * X-Forwarded-* are kept. Unset: any peer with the secret is served, and only 127.0.0.1 and ::1 count as
   * trusted for X-Forwarded-* (the default bind is loopback).
   */
  trustedCidrs?: readonly string[];
  logger: Logger;
  /** Counts requests by outcome, upstream errors by kind, retries, and request duration. */
  metrics?: Metrics | undefined;
  clock: Clock;
  /** HEALTH_INTERVAL_SECONDS: CPU readings of deployments without an override count for 3 of these. */
  defaultIntervalSeconds: number;
  /** REPLICA_ALLOWED_CIDRS (see TableOptions). */
  replicaAllowList?: ReplicaAllowList | undefined;
  /**
   * PROXY_REFRESH_MS: how often CPU readings of the table's replicas are read (they send no NOTIFY); without a
   * change feed, how often the whole table is.
   */
  refreshMs: number;
  /** PROXY_FULL_REFRESH_MS: the whole table is reloaded this often while following the change feed. Default 60000. */
  fullRefreshMs?: number | undefined;
  /** Coalesces bursts of change notifications into one refresh. */
  debounceMs?: number;
  connectTimeoutMs: number;
  /**
   * Time to the upstream's response headers, and the longest gap between two body chunks: a response that keeps
   * streaming (SSE, a long download, a long-poll once its headers came) is never cut while bytes flow.
   */
  responseTimeoutMs: number;
  /**
   * PROXY_WS_IDLE_TIMEOUT_MS: an upgraded connection (WebSocket) or an HTTP/2 stream (gRPC) that has answered closes
   * after this long without a byte in either direction, and only then. Default 300000 (5 minutes).
   */
  wsIdleTimeoutMs?: number;
  /** How long close() lets in-flight requests finish. */
  closeGraceMs?: number;
}

export interface RunningProxy {
  url: string;
  /** The table requests are routed with right now. */
  table(): RoutingTable;
  /** Reloads the whole table now; resolves when a full reload that started after this call has finished. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** A locally observed connect failure keeps a replica out for this long, across refreshes that may lag. */
const LOCAL_DOWN_MS = 5000;

/** PROXY_FULL_REFRESH_MS's default: the safety net behind the change feed. */
const DEFAULT_FULL_REFRESH_MS = 60_000;

/** PROXY_WS_IDLE_TIMEOUT_MS's default. */
const DEFAULT_WS_IDLE_TIMEOUT_MS = 300_000;

/** An idle h2c session to a replica closes after this long (a new call reconnects). */
const H2_SESSION_IDLE_MS = 120_000;

class FallbackProxy implements ExchangeHost, H2ExchangeHost {
  current: RoutingTable;
  readonly pools = new Map<string, Pool>();
  /** h2c sessions to replicas (gRPC), one per origin, resolved once connected. */
  readonly h2Sessions = new Map<string, Promise<ClientHttp2Session>>();
  readonly tunnels = new Set<{ destroy(): void }>();
  readonly responseTimeoutMs: number;
  readonly streamIdleTimeoutMs: number;
  private readonly downUntil = new Map<string, number>();
  private readonly secretOk: (provided: string) => boolean;
  /** Peers allowed at all (FALLBACK_TRUSTED_CIDRS); undefined: any peer with the secret. */
  private readonly allowed: BlockList | undefined;
  /** Peers whose X-Forwarded-* and Forwarded headers are kept. */
  private readonly forwardTrust: BlockList;
  /** Keyed by the client's socket (HTTP/1) or the socket of its HTTP/2 session. */
  private readonly peers = new WeakMap<object, PeerTrust>();
  /** The problem code a response answered with (its metrics outcome); absent: the replica's answer went through. */
  private readonly outcomes = new WeakMap<ServerResponse | ServerHttp2Stream, string>();

  constructor(
    private readonly opts: ProxyOptions,
    first: ProxySnapshot,
  ) {
    this.responseTimeoutMs = opts.responseTimeoutMs;
    this.streamIdleTimeoutMs = opts.wsIdleTimeoutMs ?? DEFAULT_WS_IDLE_TIMEOUT_MS;
    this.secretOk = secretMatcher(opts.secret);
    this.allowed = opts.trustedCidrs && opts.trustedCidrs.length > 0 ? trustedPeers(opts.trustedCidrs) : undefined;
    this.forwardTrust = this.allowed ?? trustedPeers(LOOPBACK_PEERS);
    this.current = RoutingTable.build(first, {
      defaultIntervalSeconds: opts.defaultIntervalSeconds,
      replicaAllowList: opts.replicaAllowList,
    });
  }

  /** Swaps in a table built from a new snapshot; closes the pools of origins that left. */
  install(snapshot: ProxySnapshot): void {
    const next = RoutingTable.build(
      snapshot,
      { defaultIntervalSeconds: this.opts.defaultIntervalSeconds, replicaAllowList: this.opts.replicaAllowList },
      this.current,
    );
    this.keepLocalDowns(next);
    this.current = next;
    this.closeOrigins([...this.pools.keys(), ...this.h2Sessions.keys()].filter((o) => !next.hasOrigin(o)));
  }

  /** Replaces these deployments' entries with `rows` (theirs only); closes the pools of origins that left. */
  update(deploymentIds: readonly string[], rows: ProxySnapshot): void {
    const left = this.current.replaceDeployments(deploymentIds, rows);
    this.keepLocalDowns(this.current);
    this.closeOrigins(left);
  }

  /** Sets the latest CPU readings of the replicas in the table. */
  updateReadings(readings: readonly CpuReading[]): void {
    this.current.updateCpu(readings);
  }

  /** A replica this proxy saw fail to connect stays out of `table` until LOCAL_DOWN_MS pass, whatever the rows say. */
  private keepLocalDowns(table: RoutingTable): void {
    const now = this.opts.clock.now().getTime();
    for (const [id, until] of this.downUntil) {
      if (until <= now) {
        this.downUntil.delete(id);
      } else {
        table.markUnhealthy(id);
      }
    }
  }

  private closeOrigins(origins: readonly string[]): void {
    for (const origin of origins) {
      const pool = this.pools.get(origin);
      if (pool) {
        this.pools.delete(origin);
        pool.close().catch(() => {}); // lets in-flight requests finish
      }
      const session = this.h2Sessions.get(origin);
      if (session) {
        this.h2Sessions.delete(origin);
        session.then(
          (s) => s.close(),
          () => {},
        ); // GOAWAY: streams in flight finish
      }
    }
  }

  h2SessionFor(origin: string): Promise<ClientHttp2Session> {
    const existing = this.h2Sessions.get(origin);
    if (existing) {
      return existing;
    }
    const pending = new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = connectH2(origin);
      const forget = () => {
        if (this.h2Sessions.get(origin) === pending) {
          this.h2Sessions.delete(origin);
        }
      };
      const timer = setTimeout(() => {
        const err: Error & { code?: string } = new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`);
        err.code = "UND_ERR_CONNECT_TIMEOUT";
        forget();
        session.destroy();
        reject(err);
      }, this.opts.connectTimeoutMs);
      session.once("connect", () => {
        clearTimeout(timer);
        resolve(session);
      });
      session.on("error", (err) => {
        clearTimeout(timer);
        forget();
        reject(err); // ignored once connected: its streams fail with it
      });
      session.once("goaway", forget);
      session.once("close", forget);
      session.setTimeout(H2_SESSION_IDLE_MS, () => session.close());
    });
    pending.catch(() => {}); // every caller handles the rejection itself
    this.h2Sessions.set(origin, pending);
    return pending;
  }

  dispatcherFor(origin: string): Dispatcher {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connectTimeout: this.opts.connectTimeoutMs,
        headersTimeout: this.opts.responseTimeoutMs,
        bodyTimeout: this.opts.responseTimeoutMs,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 600_000,
        pipelining: 1,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /**
   * Resolves the backend for a request, or the problem to answer with. Authentication comes first and says
   * nothing: a peer outside FALLBACK_TRUSTED_CIDRS or a wrong secret gets 403, no secret 401. Only then the
   * path, and the deployment named by X-Obiente-Deployment — never a lookup by Host (issue 10 #1).
   */
  private resolve(peer: PeerTrust, scan: RequestScan, url: string): TableBackend | ProxyProblem {
    if (!peer.allowed) {
      return problems.forbidden();
    }
    if (scan.secret === undefined) {
      return problems.unauthenticated();
    }
    if (scan.routingRepeated || !this.secretOk(scan.secret)) {
      return problems.forbidden();
    }
    if (isRefusedPath(url)) {
      return problems.invalidPath();
    }
    if (scan.hostRepeated) {
      return problems.badRequest("More than one Host header.");
    }
    if (scan.deployment === undefined) {
      return problems.missingDeployment();
    }
    const host = scan.host === undefined ? "" : normalizeHost(scan.host);
    return this.current.byDeployment(scan.deployment, host, url) ?? problems.notFound(`deployment ${scan.deployment}`);
  }

  private peerOf(socket: { readonly remoteAddress?: string | undefined }): PeerTrust {
    let p = this.peers.get(socket);
    if (p === undefined) {
      const address = socket.remoteAddress;
      p = this.allowed
        ? { allowed: isTrustedPeer(this.allowed, address), trusted: isTrustedPeer(this.allowed, address) }
        : { allowed: true, trusted: isTrustedPeer(this.forwardTrust, address) };
      this.peers.set(socket, p);
    }
    return p;
  }

  /** Resolves the backend, picks a replica and adds X-Forwarded-*; or returns the problem to answer with. */
  private route(
    socket: Socket,
    scan: RequestScan,
    url: string,
  ): { backend: TableBackend; replica: TableReplica } | ProxyProblem {
    const peer = this.peerOf(socket);
    const found = this.resolve(peer, scan, url);
    if ("status" in found) {
      return found;
    }
    if (found.protocol === "h2c") {
      // Traefik reaches the proxy over h2c for these (the service URL is h2c://, render.ts); it sends only
      // connection upgrades over HTTP/1 (pkg/server/service/smart_roundtripper.go), and gRPC has no HTTP/1 form.
      return problems.badUpstream("This deployment speaks h2c (gRPC): it is carried over HTTP/2 only.");
    }
    const replica = this.current.pickReplica(found, this.opts.clock.now());
    if (!replica) {
      return problems.noHealthyReplica(found.deploymentId);
    }
    appendForwarding(scan, socket.remoteAddress, peer.trusted);
    return { backend: found, replica };
  }

  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const metrics = this.opts.metrics;
    if (metrics) {
      const started = performance.now();
      res.once("close", () => {
        const outcome = this.outcomes.get(res) ?? (res.writableFinished ? "proxied" : "interrupted");
        metrics.proxyRequests.inc({ outcome });
        metrics.proxyDuration.observe((performance.now() - started) / 1000);
      });
    }
    const url = req.url ?? "/";
    const scan = scanRequest(req.rawHeaders);
    const routed = this.route(req.socket, scan, url);
    if ("status" in routed) {
      this.answer(req, res, routed);
      return;
    }
    new Exchange(this, req, res, scan, routed.backend, routed.replica).dispatch();
  };

  /**
   * An HTTP/2 stream (Traefik speaks h2c to the proxy for `h2c` routes): the same checks as HTTP/1 (peer, secret,
   * path, deployment header), the same least-CPU pick, then the call goes to the replica over h2c. Only `h2c`
   * deployments are reached this way.
   */
  readonly onStream = (
    stream: ServerHttp2Stream,
    _headers: IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ): void => {
    stream.on("error", () => {}); // a reset or a session going away: the close handlers clean up
    const metrics = this.opts.metrics;
    if (metrics) {
      const started = performance.now();
      stream.once("close", () => {
        const outcome = this.outcomes.get(stream) ?? (stream.rstCode === 0 ? "proxied" : "interrupted");
        metrics.proxyRequests.inc({ outcome });
        metrics.proxyDuration.observe((performance.now() - started) / 1000);
      });
    }
    const req = scanH2Request(rawHeaders);
    const socket = stream.session?.socket;
    if (!socket) {
      stream.close();
      return;
    }
    const peer = this.peerOf(socket);
    const found = this.resolve(peer, req.scan, req.path);
    const picked =
      "status" in found
        ? found
        : found.protocol !== "h2c"
          ? problems.badUpstream("This deployment speaks HTTP/1.1: HTTP/2 reaches h2c (gRPC) deployments only.")
          : (this.current.pickReplica(found, this.opts.clock.now()) ?? problems.noHealthyReplica(found.deploymentId));
    if ("status" in picked || "status" in found) {
      const p = "status" in picked ? picked : problems.badUpstream("No replica.");
      this.answerStream(stream, req.path, isGrpc(req.scan.headers), p, req.method);
      return;
    }
    appendForwarding(req.scan, socket.remoteAddress, peer.trusted);
    new H2Exchange(this, stream, req, found, picked).dispatch();
  };

  h2Failed(ex: H2Exchange, failure: UpstreamFailure): void {
    const { stream } = ex;
    if (stream.destroyed || stream.closed) {
      return; // the client left first
    }
    this.opts.metrics?.proxyUpstreamErrors.inc({ kind: failure.kind });
    // Only a failed connect may go to a second replica: the session connects before the request is sent, so
    // nothing of the client's stream was read yet.
    const verdict = upstreamVerdict(failure, "http", ex.attempt === 0 && failure.kind === "connect");
    if (verdict.failed !== undefined) {
      this.replicaFailed(ex.replica, verdict.failed);
    }
    if (verdict.retry) {
      const next = this.current.pickReplica(ex.backend, this.opts.clock.now(), ex.replica.id);
      if (next) {
        this.opts.metrics?.proxyRetries.inc();
        ex.attempt++;
        ex.replica = next;
        ex.dispatch();
        return;
      }
    }
    this.answerStream(stream, ex.req.path, ex.grpc, verdict.problem, ex.req.method);
  }

  private answerStream(stream: ServerHttp2Stream, path: string, grpc: boolean, p: ProxyProblem, method: string): void {
    this.outcomes.set(stream, p.code.toLowerCase());
    const id = sendStreamProblem(stream, p, path, grpc);
    if (p.status === 502 || p.status === 504) {
      this.opts.logger.warn("proxy answered with a problem", {
        requestId: id,
        status: p.status,
        code: p.code,
        method,
        path,
      });
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse, p: ProxyProblem): void {
    this.outcomes.set(res, p.code.toLowerCase()); // a catalogued code: a bounded label
    const id = sendProblem(res, p, req.url, req.headers.accept);
    if (p.status === 502 || p.status === 504) {
      // Upstream trouble. (503s are expected while a deployment has no healthy replica: the health
      // transition was logged already, one line per request would flood.)
      this.opts.logger.warn("proxy answered with a problem", {
        requestId: id,
        status: p.status,
        code: p.code,
        method: req.method,
        path: req.url,
      });
    }
  }

  upstreamFailed(ex: Exchange, err: Error & { code?: string }): void {
    const { res } = ex;
    if (ex.cancelled || res.destroyed) {
      return; // the client left first
    }
    if (res.headersSent) {
      this.opts.metrics?.proxyUpstreamErrors.inc({ kind: "mid_response" });
      res.destroy(); // mid-body: all we can do is cut the response
      return;
    }
    const failure = httpFailure(err, ex);
    this.opts.metrics?.proxyUpstreamErrors.inc({ kind: failure.kind });
    const verdict = upstreamVerdict(failure, "http", ex.attempt === 0 && ex.retryable);
    if (verdict.failed !== undefined) {
      this.replicaFailed(ex.replica, verdict.failed);
    }
    if (verdict.retry && this.retry(ex)) {
      return;
    }
    if (failure.kind === "closed" || failure.kind === "invalid") {
      this.opts.logger.debug("upstream failed", { replica: ex.replica.id, err });
    }
    this.answer(ex.req, res, verdict.problem);
  }

  /** One retry on the next-best replica (the verdict said the request may go to a second one). */
  private retry(ex: Exchange): boolean {
    const next = this.current.pickReplica(ex.backend, this.opts.clock.now(), ex.replica.id);
    if (!next) {
      return false;
    }
    this.opts.metrics?.proxyRetries.inc();
    ex.attempt++;
    ex.replica = next;
    ex.dispatch();
    return true;
  }

  /** Takes the replica out at once and reports it once (the database write collapses repeats anyway). */
  replicaFailed(replica: TableReplica, error: string): void {
    replica.healthy = false;
    this.current.markUnhealthy(replica.id);
    const now = this.opts.clock.now();
    if ((this.downUntil.get(replica.id) ?? 0) > now.getTime()) {
      return;
    }
    this.downUntil.set(replica.id, now.getTime() + LOCAL_DOWN_MS);
    this.opts.logger.warn("replica unreachable, taken out of rotation", {
      deploymentId: replica.deploymentId,
      replicaId: replica.id,
      error,
    });
    this.opts
      .reportFailure({ deploymentId: replica.deploymentId, replicaId: replica.id, at: now, error })
      .catch((err: unknown) => this.opts.logger.warn("failure report failed", { replicaId: replica.id, err }));
  }

  readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => socket.destroy());
    const url = req.url ?? "/";
    const scan = scanRequest(req.rawHeaders);
    const routed = this.route(req.socket, scan, url);
    if ("status" in routed) {
      writeRawProblem(socket, routed, url);
      return;
    }
    const key = webSocketKeyOf(scan);
    // An upgrade request carries no body (RFC 6455 §4.1): one with a body would be forwarded without it (Node puts
    // the bytes in `head`, written only after a 101) and a chunked one piped unparsed.
    if (scan.upgrade?.toLowerCase() !== "websocket" || key === undefined || scan.hasBody) {
      writeRawProblem(socket, problems.notWebSocket(), url);
      return;
    }
    scan.headers.push("connection", "upgrade", "upgrade", "websocket");
    this.tunnel(socket, head, scan.headers, key, url, routed.backend, routed.replica, 0);
  };

  private tunnel(
    client: Duplex,
    head: Buffer,
    headers: string[],
    key: string,
    url: string,
    backend: TableBackend,
    replica: TableReplica,
    attempt: number,
  ): void {
    const t = openTunnel({
      client,
      head,
      path: url,
      headers,
      webSocketKey: key,
      target: { address: replica.address, port: replica.port, tls: backend.protocol === "https" },
      connectTimeoutMs: this.opts.connectTimeoutMs,
      responseTimeoutMs: this.opts.responseTimeoutMs,
      idleTimeoutMs: this.streamIdleTimeoutMs,
      onClose: () => this.tunnels.delete(t),
      onFail: (f) => {
        this.opts.metrics?.proxyUpstreamErrors.inc({ kind: f.kind });
        const verdict = upstreamVerdict(f, "websocket", attempt === 0);
        if (verdict.failed !== undefined) {
          this.replicaFailed(replica, verdict.failed);
        }
        const next = verdict.retry ? this.current.pickReplica(backend, this.opts.clock.now(), replica.id) : undefined;
        if (next) {
          this.opts.metrics?.proxyRetries.inc();
          this.tunnel(client, head, headers, key, url, backend, next, attempt + 1);
          return;
        }
        writeRawProblem(client, verdict.problem, url);
      },
    });
    this.tunnels.add(t);
  }
}

interface PeerTrust {
  /** May use the proxy at all (FALLBACK_TRUSTED_CIDRS, when set). */
  allowed: boolean;
  /** Its X-Forwarded-* and Forwarded headers are kept. */
  trusted: boolean;
}

/** HTTP/2's connection preface (RFC 9113 §3.4): a client speaking h2c with prior knowledge starts with it. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** A new connection that sends nothing for this long is dropped (the HTTP/1 server's headersTimeout). */
const SNIFF_TIMEOUT_MS = 60_000;

/**
 * Reads a new connection's first bytes: the HTTP/2 preface (Traefik's h2c transport, for `h2c` routes) hands it to
 * `h2`, anything else to the HTTP/1 server's own connection listeners. The bytes read are put back first.
 */
function sniffProtocol(
  socket: Socket,
  pending: Set<Socket>,
  onH2: (s: Socket) => void,
  onHttp1: (s: Socket) => void,
): void {
  let buf: Buffer = Buffer.alloc(0);
  pending.add(socket); // close() destroys connections that never said which protocol they speak
  const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
  const onError = () => socket.destroy();
  const onClose = () => {
    clearTimeout(timer);
    pending.delete(socket);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const n = Math.min(buf.length, H2_PREFACE.length);
    const h2 = buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (h2 && buf.length < H2_PREFACE.length) {
      return; // could still be either: wait for more
    }
    clearTimeout(timer);
    pending.delete(socket);
    socket.pause();
    socket.off("data", onData);
    socket.off("error", onError);
    socket.off("close", onClose);
    socket.unshift(buf);
    if (h2) {
      onH2(socket); // node:http2 reads what was put back (lib/internal/http2/core.js setupHandle)
    } else {
      onHttp1(socket);
      socket.resume(); // the HTTP/1 parser reads the put-back bytes first, then consumes the socket
    }
  };
  socket.on("data", onData);
  socket.on("error", onError);
  socket.once("close", onClose);
}

/** The request's one well-formed Sec-WebSocket-Key, else undefined. */
function webSocketKeyOf(scan: RequestScan): string | undefined {
  let key: string | undefined;
  const h = scan.headers;
  for (let i = 0; i + 1 < h.length; i += 2) {
    if (isNamed(h[i] as string, "sec-websocket-key")) {
      if (key !== undefined) {
        return undefined;
      }
      key = (h[i + 1] as string).trim();
    }
  }
  return key !== undefined && isWebSocketKey(key) ? key : undefined;
}

/** Starts the fallback proxy: loads the table, listens, and keeps the table fresh until close(). */
export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const { logger } = opts;
  const proxy = new FallbackProxy(opts, await opts.loadSnapshot());
  const server: Server = createServer(
    {
      keepAliveTimeout: 120_000, // longer than Traefik's idle timeout to its backends (90 s)
      headersTimeout: 60_000,
      requestTimeout: 0, // long uploads are fine; the upstream decides
    },
    proxy.onRequest,
  );
  server.on("upgrade", proxy.onUpgrade);
  server.on("clientError", answerClientError);
  // HTTP/2 with prior knowledge on the same port (Traefik's h2c transport for `h2c` routes, i.e. gRPC).
  const h2 = createH2Server();
  const h2Clients = new Set<Http2Session>();
  h2.on("stream", proxy.onStream);
  h2.on("session", (session: Http2Session) => {
    h2Clients.add(session);
    session.on("error", () => {});
    session.once("close", () => h2Clients.delete(session));
  });
  const http1Listeners = server.listeners("connection") as ((socket: Socket) => void)[];
  const sniffing = new Set<Socket>();
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) =>
    sniffProtocol(
      socket,
      sniffing,
      (s) => h2.emit("connection", s),
      (s) => {
        for (const listener of http1Listeners) {
          listener.call(server, s);
        }
      },
    ),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { loadDeployments, loadReadings } = opts;
  const refresher = await startRefresher({
    reloadAll: async () => proxy.install(await opts.loadSnapshot()),
    reloadDeployments: loadDeployments && (async (ids) => proxy.update(ids, await loadDeployments(ids))),
    refreshReadings:
      loadReadings &&
      (async () => {
        const ids = proxy.current.deploymentIds();
        if (ids.length > 0) {
          proxy.updateReadings(await loadReadings(ids)); // an empty table (no least-CPU deployment): no query at all
        }
      }),
    listen: opts.listen,
    intervalMs: opts.refreshMs,
    fullIntervalMs: opts.fullRefreshMs ?? DEFAULT_FULL_REFRESH_MS,
    debounceMs: opts.debounceMs ?? 25,
    logger,
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  logger.info("fallback proxy listening", { url, deployments: proxy.current.deploymentCount });

  return {
    url,
    table: () => proxy.current,
    refresh: refresher.refresh,
    async close() {
      await refresher.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      for (const socket of sniffing) {
        socket.destroy();
      }
      const force = setTimeout(() => server.closeAllConnections(), opts.closeGraceMs ?? 5000);
      for (const t of proxy.tunnels) {
        t.destroy();
      }
      for (const session of h2Clients) {
        session.close(); // GOAWAY: streams in flight may finish within the grace period
      }
      const forceH2 = setTimeout(() => {
        for (const session of h2Clients) {
          session.destroy();
        }
      }, opts.closeGraceMs ?? 5000);
      await closed;
      await Promise.all(
        [...h2Clients].map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once("close", resolve)))),
      );
      clearTimeout(force);
      clearTimeout(forceH2);
      const upstream = [...proxy.h2Sessions.values()];
      proxy.h2Sessions.clear();
      await Promise.all(
        upstream.map((p) =>
          p.then(
            (s) => s.destroy(),
            () => {},
          ),
        ),
      );
      await Promise.all([...proxy.pools.values()].map((p) => p.destroy().catch(() => {})));
      proxy.pools.clear();
    },
  };
}
