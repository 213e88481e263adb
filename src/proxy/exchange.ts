import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants as http2constants,
  type ServerHttp2Stream,
} from "node:http2";
import type { Dispatcher } from "undici";
import { connectionListed, dropListed, isHopByHop, isNamed } from "./headers.js";
import type { H2RequestScan, RequestScan } from "./request.js";
import type { TableBackend, TableReplica } from "./table.js";
import type { UpstreamFailure } from "./verdict.js";

/** What an exchange needs from the proxy around it. */
export interface ExchangeHost {
  dispatcherFor(origin: string): Dispatcher;
  upstreamFailed(ex: Exchange, err: Error & { code?: string }): void;
}

/**
 * One proxied request: an undici dispatch handler that copies the upstream response into the client's
 * `ServerResponse`, streaming with backpressure. Uses undici's raw-header handler interface, which skips
 * building header objects on the hot path.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** onConnect ran: the request reached a socket, so a failure now is not a connect failure. */
  connected = false;
  /** The upstream's status line arrived (from then on a failure can only cut the response). */
  responded = false;
  /** The client left; whatever the upstream does no longer matters. */
  cancelled = false;
  /** 0 for the first try, 1 for the retry on the next-best replica. */
  attempt = 0;
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;

  constructor(
    readonly host: ExchangeHost,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly scan: RequestScan,
    readonly backend: TableBackend,
    public replica: TableReplica,
  ) {
    res.once("close", this.onClientClose);
  }

  /** Sends the request to `this.replica`. */
  dispatch(): void {
    const { req, scan } = this;
    this.connected = false;
    this.host.dispatcherFor(this.replica.origin).dispatch(
      {
        path: req.url ?? "/",
        method: (req.method ?? "GET") as Dispatcher.HttpMethod,
        headers: scan.headers,
        body: scan.hasBody ? req : null,
      },
      this,
    );
  }

  /** GET, HEAD and OPTIONS without a body may go to a second replica when the first cannot be reached. */
  get retryable(): boolean {
    const m = this.req.method;
    return !this.scan.hasBody && (m === "GET" || m === "HEAD" || m === "OPTIONS");
  }

  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) {
      return;
    }
    this.cancelled = true;
    this.abortUpstream?.(new Error("client closed the connection"));
  };

  onConnect(abort: (err?: Error) => void): void {
    this.connected = true;
    this.abortUpstream = abort;
    if (this.cancelled) {
      abort(new Error("client closed the connection"));
    }
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      return true; // 1xx informational: Node already answered the client's Expect
    }
    this.responded = true;
    this.resumeUpstream = resume;
    const out: string[] = [];
    let connection: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] as Buffer).toString("latin1");
      if (isHopByHop(name)) {
        if (isNamed(name, "connection")) {
          connection = (raw[i + 1] as Buffer).toString("latin1");
        }
        continue;
      }
      out.push(name, (raw[i + 1] as Buffer).toString("latin1"));
    }
    const listed = connectionListed(connection);
    if (listed.length > 0) {
      dropListed(out, listed);
    }
    if (this.cancelled) {
      return true;
    }
    if (statusText) {
      this.res.writeHead(statusCode, statusText, out);
    } else {
      this.res.writeHead(statusCode, out);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) {
      return true;
    }
    if (this.res.destroyed) {
      return true; // the close handler aborts the upstream
    }
    const resume = this.resumeUpstream;
    if (resume) {
      this.res.once("drain", resume);
    }
    return false;
  }

  onComplete(): void {
    this.res.end();
  }

  onError(err: Error): void {
    this.host.upstreamFailed(this, err);
  }
}

/** What an HTTP/2 exchange needs from the proxy around it. */
export interface H2ExchangeHost {
  /** A connected HTTP/2 (h2c) session to `origin`, shared by every stream to it; rejects when it cannot connect. */
  h2SessionFor(origin: string): Promise<ClientHttp2Session>;
  /** The exchange failed before any answer reached the client: retry it on another replica, or answer. */
  h2Failed(ex: H2Exchange, failure: UpstreamFailure): void;
  readonly responseTimeoutMs: number;
  readonly streamIdleTimeoutMs: number;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_INTERNAL_ERROR } = http2constants;

/** Response headers HTTP/2 forbids (RFC 9113 §8.2.2); nghttp2 rejects them from a replica anyway. */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/** A replica's response headers or trailers, as the proxy sends them on: `:status` kept, other pseudo-headers not. */
function relayedHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) {
    if ((name.charCodeAt(0) === 58 /* : */ && name !== ":status") || CONNECTION_SPECIFIC.has(name)) {
      continue;
    }
    out[name] = headers[name];
  }
  return out;
}

/** The request as sent to the replica: the scanned headers (ours removed, X-Forwarded-* added) over h2c. */
function upstreamH2Headers(req: H2RequestScan): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ":method": req.method, ":path": req.path, ":scheme": "http" };
  const flat = req.scan.headers;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    if (name === "host") {
      out[":authority"] ??= value;
      continue;
    }
    const existing = out[name];
    if (existing === undefined) {
      out[name] = value;
    } else if (Array.isArray(existing)) {
      existing.push(value);
    } else {
      out[name] = [String(existing), value];
    }
  }
  if (req.teTrailers) {
    out.te = "trailers";
  }
  return out;
}

/**
 * One proxied HTTP/2 stream (a gRPC call over h2c): the client's stream piped to a stream on a shared h2c session
 * to the replica and back, with backpressure both ways (HTTP/2 flow control on each side), the replica's response
 * headers and trailers (`grpc-status`, `grpc-message`, trailing metadata) relayed as they are, a Trailers-Only
 * answer kept Trailers-Only, and a reset on either side passed on to the other. The response timeout bounds the
 * wait for the response headers; after them the stream closes only after `streamIdleTimeoutMs` without a byte.
 */
export class H2Exchange {
  /** The replica's response headers arrived (from then on a failure can only cut the stream). */
  responded = false;
  /** 0 for the first try, 1 for the retry on the next-best replica (only after a failed connect). */
  attempt = 0;
  /** Whether the client asked for gRPC (its problems are then answered as gRPC statuses). */
  readonly grpc: boolean;
  private readonly headers: OutgoingHttpHeaders;
  private upstream: ClientHttp2Stream | undefined;
  private trailers: OutgoingHttpHeaders = {};
  private failed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly host: H2ExchangeHost,
    readonly stream: ServerHttp2Stream,
    readonly req: H2RequestScan,
    readonly backend: TableBackend,
    public replica: TableReplica,
  ) {
    this.grpc = isGrpc(req.scan.headers);
    this.headers = upstreamH2Headers(req);
    stream.on("wantTrailers", () => stream.sendTrailers(this.trailers));
    stream.once("close", () => {
      clearTimeout(this.timer);
      this.upstream?.close(NGHTTP2_CANCEL); // a no-op once the upstream stream has closed on its own
    });
  }

  /** Sends the request to `this.replica` once its session is connected (nothing is read from the client before). */
  dispatch(): void {
    this.failed = false;
    this.host.h2SessionFor(this.replica.origin).then(
      (session) => this.send(session),
      (err: Error & { code?: string }) => this.fail({ kind: "connect", err }),
    );
  }

  private fail(failure: UpstreamFailure): void {
    clearTimeout(this.timer);
    if (this.failed || this.responded) {
      return;
    }
    this.failed = true;
    this.host.h2Failed(this, failure);
  }

  private send(session: ClientHttp2Session): void {
    const { stream } = this;
    if (stream.destroyed || stream.closed) {
      return;
    }
    let up: ClientHttp2Stream;
    try {
      up = session.request(this.headers, { endStream: false });
    } catch {
      this.fail({ kind: "unsendable" }); // a header value HTTP/2 cannot carry
      return;
    }
    this.upstream = up;
    this.timer = setTimeout(() => {
      this.fail({ kind: "timeout" });
      up.close(NGHTTP2_CANCEL);
    }, this.host.responseTimeoutMs);
    up.on("response", (headers, flags) => {
      clearTimeout(this.timer);
      if (this.failed) {
        up.close(NGHTTP2_CANCEL);
        return;
      }
      this.responded = true;
      if (stream.destroyed || stream.closed) {
        up.close(NGHTTP2_CANCEL);
        return;
      }
      const out = relayedHeaders(headers);
      try {
        if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
          stream.respond(out, { endStream: true }); // Trailers-Only (a gRPC error before any message)
          return;
        }
        stream.respond(out, { waitForTrailers: true });
      } catch {
        up.close(NGHTTP2_CANCEL);
        stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
      up.setTimeout(this.host.streamIdleTimeoutMs, () => {
        up.close(NGHTTP2_CANCEL);
        stream.close(NGHTTP2_CANCEL);
      });
      up.pipe(stream); // its end queues the trailers (`wantTrailers`)
    });
    up.on("trailers", (trailers) => {
      this.trailers = relayedHeaders(trailers);
    });
    up.on("error", () => {}); // judged on `close`, by how far the exchange got
    up.on("close", () => {
      clearTimeout(this.timer);
      if (!this.responded) {
        this.fail({ kind: "closed" });
      } else if (up.rstCode !== undefined && up.rstCode !== 0 && !stream.closed) {
        stream.close(up.rstCode); // the replica reset the stream mid-answer: reset the client's too
      }
    });
    stream.pipe(up);
  }
}

/** `content-type: application/grpc…` (also `+proto`, `+json`): the proxy's own answers then take gRPC's form. */
export function isGrpc(flat: readonly string[]): boolean {
  for (let i = 0; i + 1 < flat.length; i += 2) {
    if (isNamed(flat[i] as string, "content-type")) {
      return (flat[i + 1] as string).toLowerCase().startsWith("application/grpc");
    }
  }
  return false;
}
