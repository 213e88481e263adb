import { type ProxyProblem, problems } from "./problem.js";

// The upstream failure decision, once for the HTTP and the WebSocket paths: retry on another replica? take the
// replica out and report it? which problem (502 bad upstream, 504 timeout, 400 unsendable) does the client get?
// Pure. (503 NO_HEALTHY_REPLICA is decided before any attempt, when no replica is left to pick.)

/** How a request to a replica failed, before anything of the answer reached the client. */
export type UpstreamFailure =
  | { kind: "connect"; err: Error & { code?: string } } // could not reach the replica: nothing was sent
  | { kind: "timeout" } // connected and sent; no answer (or no next chunk) in time
  | { kind: "closed" } // connected and sent; the connection closed before any answer
  | { kind: "handshake" } // WebSocket: a 101 that does not complete the client's handshake
  | { kind: "unsendable" } // HTTP: the request could not be forwarded as the client sent it
  | { kind: "invalid" }; // HTTP: anything else, no valid response

export interface UpstreamVerdict {
  /** Take the replica out and report it, with this reason; undefined: the failure says nothing of its health. */
  failed: string | undefined;
  /** Try the next-best replica, when there is one; else answer with `problem`. */
  retry: boolean;
  /** The client's answer when there is no retry. */
  problem: ProxyProblem;
}

const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);

/** Whether an error before onConnect means the replica could not be reached (reported as a failure). */
export function isConnectError(err: Error & { code?: string }): boolean {
  const code = err.code ?? "";
  return CONNECT_ERRORS.has(code) || code.startsWith("ERR_TLS") || code.includes("CERT");
}

/** The health reason recorded for a failed connect. */
export function describeConnectError(err: Error & { code?: string }): string {
  if (err.code === "UND_ERR_CONNECT_TIMEOUT") {
    return "connect timeout";
  }
  return `connection failed: ${err.code ?? err.message}`;
}

/** Classifies an undici dispatch error by how far the exchange got (onConnect ran, the status line arrived). */
export function httpFailure(
  err: Error & { code?: string },
  progress: { connected: boolean; responded: boolean },
): UpstreamFailure {
  const code = err.code;
  if (!progress.connected && isConnectError(err)) {
    return { kind: "connect", err };
  }
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return { kind: "timeout" };
  }
  if (progress.connected && !progress.responded && (code === "UND_ERR_SOCKET" || code === "ECONNRESET")) {
    return { kind: "closed" };
  }
  if (code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH") {
    return { kind: "unsendable" };
  }
  return { kind: "invalid" };
}

const NO_VALID_RESPONSE = "The replica sent no valid response.";
const UPGRADE_TIMEOUT = "The replica did not answer the upgrade in time.";
const UPGRADE_UNREACHABLE = "The replica could not be reached for the upgrade.";

/**
 * Decides what a failed upstream request means. `retryable`: this was the first attempt and the request may go to
 * a second replica (HTTP: GET, HEAD or OPTIONS without a body; a WebSocket upgrade always). Only a failed connect
 * marks the replica failed; an HTTP connection closed before the answer is a kept-alive socket that died under
 * us, retried without blaming the replica (a WebSocket upgrade has a connection of its own).
 */
export function upstreamVerdict(
  failure: UpstreamFailure,
  path: "http" | "websocket",
  retryable: boolean,
): UpstreamVerdict {
  const ws = path === "websocket";
  switch (failure.kind) {
    case "connect":
      return {
        failed: describeConnectError(failure.err),
        retry: retryable,
        problem:
          failure.err.code === "UND_ERR_CONNECT_TIMEOUT"
            ? problems.upstreamTimeout(ws ? UPGRADE_TIMEOUT : "The replica did not accept the connection in time.")
            : problems.badUpstream(ws ? UPGRADE_UNREACHABLE : "The replica could not be reached."),
      };
    case "timeout":
      return {
        failed: undefined,
        retry: false,
        problem: problems.upstreamTimeout(ws ? UPGRADE_TIMEOUT : "The replica did not answer in time."),
      };
    case "closed":
      return {
        failed: undefined,
        retry: !ws && retryable,
        problem: problems.badUpstream(ws ? UPGRADE_UNREACHABLE : NO_VALID_RESPONSE),
      };
    case "handshake":
      return {
        failed: undefined,
        retry: false,
        problem: problems.badUpstream("The replica did not complete the WebSocket handshake."),
      };
    case "unsendable":
      return {
        failed: undefined,
        retry: false,
        problem: problems.badRequest("The request could not be forwarded as sent."),
      };
    case "invalid":
      return { failed: undefined, retry: false, problem: problems.badUpstream(NO_VALID_RESPONSE) };
  }
}
