import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Duplex } from "node:stream";
import { type Problem, type ProblemCode, problem, problemBody as problemObject } from "../lib/problem.js";

/** A failure the proxy answers itself: a catalogued problem (src/lib/problem.ts) that always has a detail. */
export type ProxyProblem = Problem & { detail: string };

const RETRY_AFTER_SECONDS = "5";

function proxyProblem(code: ProblemCode, detail: string, headers?: Record<string, string>): ProxyProblem {
  return { ...problem(code, detail, headers ? { headers } : {}), detail };
}

export const problems = {
  notFound: (what: string) => proxyProblem("DEPLOYMENT_NOT_FOUND", `No deployment is routed for ${what}.`),
  noHealthyReplica: (deploymentId: string) =>
    proxyProblem(
      "NO_HEALTHY_REPLICA",
      `Deployment ${deploymentId} has no healthy replica right now. Try again shortly.`,
      { "retry-after": RETRY_AFTER_SECONDS },
    ),
  badUpstream: (detail: string) => proxyProblem("BAD_UPSTREAM", detail),
  upstreamTimeout: (detail: string) => proxyProblem("UPSTREAM_TIMEOUT", detail),
  // The two answers to a request that did not come through the edge say nothing about what would have worked.
  unauthenticated: () =>
    proxyProblem("PROXY_UNAUTHENTICATED", "This port serves requests forwarded by the edge proxy only.", {
      "www-authenticate": 'Secret realm="obiente-fallback-proxy"',
    }),
  forbidden: () => proxyProblem("PROXY_FORBIDDEN", "This port serves requests forwarded by the edge proxy only."),
  missingDeployment: () =>
    proxyProblem(
      "BAD_REQUEST",
      "X-Obiente-Deployment is missing: the fallback proxy routes by deployment only, never by Host.",
    ),
  invalidPath: () =>
    proxyProblem("INVALID_PATH", "The request target must be a path without '..' segments, in any encoding."),
  notWebSocket: () =>
    proxyProblem(
      "BAD_REQUEST",
      "Only WebSocket upgrades (RFC 6455: a Sec-WebSocket-Key and no request body) are carried.",
    ),
  /** BAD_REQUEST, or the same code with another 4xx (431 headers too large, 408 request timeout). */
  badRequest: (detail: string, status = 400): ProxyProblem => ({
    ...proxyProblem("BAD_REQUEST", detail),
    status,
    title: STATUS_CODES[status] ?? "Bad Request",
  }),
};

const requestIdPrefix = `req_${randomBytes(3).toString("hex")}`;
let requestCounter = 0;

/** A short id for a problem response, unique within this process (correlates logs and bodies). */
export function nextRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x7fff_ffff;
  return `${requestIdPrefix}${requestCounter.toString(36).padStart(6, "0")}`;
}

/** The `instance` member: the request path without its query. */
export function instanceOf(url: string | undefined): string {
  if (!url) {
    return "/";
  }
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

/** The problem+json body (RFC 9457: type, title, status, detail, instance, plus our code and requestId). */
export function problemBody(p: ProxyProblem, instance: string, requestId: string): string {
  return JSON.stringify(problemObject(p, instance, requestId));
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);

/** The branded page browsers get for the same problem (they ask for text/html first). */
export function problemPage(p: ProxyProblem, requestId: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${p.status} ${escapeHtml(p.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;background:#f6f7f9;color:#1d232b}
main{max-width:32rem;padding:2rem}h1{font-size:1.4rem;margin:0 0 .5rem}small{color:#6b7480}</style></head>
<body><main><h1>${p.status} · ${escapeHtml(p.title)}</h1><p>${escapeHtml(p.detail)}</p>
<small>obiente · ${escapeHtml(p.code)} · ${escapeHtml(requestId)}</small></main></body></html>
`;
}

function wantsHtml(accept: string | undefined): boolean {
  return accept?.startsWith("text/html") === true;
}

/** Answers a request with a problem (or its HTML page for browsers); returns the request id. */
export function sendProblem(res: ServerResponse, p: ProxyProblem, url: string | undefined, accept?: string): string {
  const requestId = nextRequestId();
  const html = wantsHtml(accept);
  const body = html ? problemPage(p, requestId) : problemBody(p, instanceOf(url), requestId);
  res.writeHead(p.status, {
    ...p.headers,
    "content-type": html ? "text/html; charset=utf-8" : "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
  return requestId;
}

/**
 * gRPC status codes for the proxy's own answers, after gRPC's HTTP-to-gRPC mapping
 * (grpc/grpc doc/http-grpc-status-mapping.md): 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, 400 INTERNAL, anything else UNKNOWN.
 */
function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** gRPC's Percent-Encoded grpc-message: bytes outside printable ASCII, and `%`, as `%XX` (PROTOCOL-HTTP2.md). */
function grpcMessage(detail: string): string {
  let out = "";
  for (const b of Buffer.from(detail, "utf8")) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * Answers an HTTP/2 request with a problem. A gRPC call (`content-type: application/grpc…`) gets a Trailers-Only
 * response (`:status` 200, `grpc-status`, `grpc-message` = the detail, plus `x-obiente-problem` = the code), so the
 * client sees e.g. `UNAVAILABLE: Deployment … has no healthy replica`; anything else gets the problem+json body.
 */
export function sendStreamProblem(stream: ServerHttp2Stream, p: ProxyProblem, path: string, grpc: boolean): string {
  const requestId = nextRequestId();
  if (stream.destroyed || stream.headersSent) {
    stream.close(0x2); // INTERNAL_ERROR: the answer had started (or the stream is gone)
    return requestId;
  }
  if (grpc) {
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(grpcStatusOf(p.status)),
        "grpc-message": grpcMessage(p.detail),
        "x-obiente-problem": p.code,
        "x-obiente-request-id": requestId,
      },
      { endStream: true },
    );
    return requestId;
  }
  const body = problemBody(p, instanceOf(path), requestId);
  const headers: OutgoingHttpHeaders = {
    ...p.headers,
    ":status": p.status,
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  };
  stream.respond(headers);
  stream.end(body);
  return requestId;
}

/** Writes a problem straight onto a socket (upgrade requests and unparsable ones) and closes it. */
export function writeRawProblem(socket: Duplex, p: ProxyProblem, url: string | undefined): string {
  const requestId = nextRequestId();
  const body = problemBody(p, instanceOf(url), requestId);
  let head = `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status] ?? "Error"}\r\n`;
  for (const [k, v] of Object.entries(p.headers ?? {})) {
    head += `${k}: ${v}\r\n`;
  }
  head += `content-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  head += "cache-control: no-store\r\nconnection: close\r\n\r\n";
  if (socket.writable) {
    socket.end(head + body);
    // After an `upgrade` event Node leaves the socket paused: read on (discarding) so the client's FIN is seen
    // and the socket closes, instead of holding server.close() open.
    socket.resume();
  } else {
    socket.destroy();
  }
  return requestId;
}

/** The server's `clientError` handler: a request Node could not parse gets a 400 problem, never a crash. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  // A response already started on this connection cannot be followed by a 400 (Node's own check).
  const pending = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (pending?.headersSent) {
    socket.destroy();
    return;
  }
  const p =
    err.code === "HPE_HEADER_OVERFLOW"
      ? problems.badRequest("Request headers are too large.", 431)
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? problems.badRequest("The request was not received in time.", 408)
        : problems.badRequest("The request could not be parsed.");
  writeRawProblem(socket, p, undefined);
}
