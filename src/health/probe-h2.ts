import { connect, type IncomingHttpHeaders } from "node:http2";
import { urlHost } from "../render/validate.js";
import type { CheckOutcome, ProbeTarget } from "./probe.js";
import { httpOutcome, MAX_BODY, tlsOptions } from "./probe.js";

// HTTP/2 probes with node:http2: prior knowledge for `h2c`, ALPN h2 for `https`. A gRPC unary call is small enough
// to write by hand (a 5-byte length prefix, a protobuf with one varint field), so no gRPC client library is loaded
// into the service for it.

interface H2Answer {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh HTTP/2 connection, closed afterwards; `signal` aborts it (timeout, shutdown). */
function h2Request(
  t: ProbeTarget,
  headers: Record<string, string>,
  body: Buffer | undefined,
  signal: AbortSignal,
): Promise<H2Answer> {
  const origin = `${t.protocol === "https" ? "https" : "http"}://${urlHost(t.address)}:${t.port}`;
  return new Promise<H2Answer>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const session = connect(origin, t.protocol === "https" ? tlsOptions(t.tls) : {});
    let settled = false;
    const finish = (err: unknown, answer?: H2Answer) => {
      if (settled) {
        return;
      }
      settled = true;
      signal.removeEventListener("abort", onAbort);
      session.destroy();
      if (answer) {
        resolve(answer);
      } else {
        reject(err);
      }
    };
    const onAbort = () => finish(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    session.on("error", (err) => finish(err));
    const req = session.request(headers, { endStream: body === undefined });
    let resHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("response", (h) => {
      resHeaders = h;
    });
    req.on("trailers", (h) => {
      trailers = h;
    });
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) {
        chunks.push(chunk);
      }
    });
    req.on("end", () => finish(undefined, { headers: resHeaders, trailers, body: Buffer.concat(chunks) }));
    req.on("error", (err) => finish(err));
    if (body !== undefined) {
      req.end(body);
    }
  });
}

/** HTTP/2 GET of the health path with the expected status (h2c prior knowledge, or h2 over TLS). */
export async function h2cGet(t: ProbeTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const answer = await h2Request(
    t,
    {
      ":method": "GET",
      ":path": t.path,
      "user-agent": "obiente-router-health/1",
      accept: "application/json, */*;q=0.5",
    },
    undefined,
    signal,
  );
  const status = Number(answer.headers[":status"] ?? 0);
  const json = String(answer.headers["content-type"] ?? "").includes("json");
  return httpOutcome(
    t.expectedStatus,
    status,
    json && answer.body.length <= MAX_BODY ? answer.body.toString() : undefined,
  );
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
const SERVING_STATUS = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
const GRPC_CODES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Reads field 1 (`status`, varint) of a HealthCheckResponse; other fields are skipped. Proto3 default: 0. */
export function servingStatusOf(message: Buffer): number {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = message[i++];
      if (b === undefined) {
        throw new Error("truncated protobuf");
      }
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        return v;
      }
      shift += 7;
    }
  };
  let status = 0;
  while (i < message.length) {
    const key = varint();
    const wire = key & 7;
    if (wire === 0) {
      const v = varint();
      if (key >>> 3 === 1) {
        status = v;
      }
    } else if (wire === 2) {
      const length = varint(); // read first: `i += varint()` would add to the old `i`
      i += length;
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  return status;
}

/** The one message of a unary gRPC response body: flag byte, 4-byte big-endian length, payload. */
function grpcMessage(body: Buffer): Buffer {
  if (body.length < 5) {
    throw new Error("gRPC response without a message");
  }
  if (body[0] !== 0) {
    throw new Error("compressed gRPC response (none was offered)");
  }
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) {
    throw new Error("truncated gRPC message");
  }
  return body.subarray(5, 5 + length);
}

/** An empty HealthCheckRequest (`service: ""`, the server as a whole), length-prefixed. */
const CHECK_REQUEST = Buffer.from([0, 0, 0, 0, 0]);

/**
 * The gRPC health-checking protocol: a unary `grpc.health.v1.Health/Check` call for the whole server; healthy only
 * on `grpc-status: 0` and `SERVING`. Like Traefik's grpc mode (pkg/healthcheck/healthcheck.go, checkHealthGRPC).
 */
export async function grpcHealthCheck(t: ProbeTarget, signal: AbortSignal): Promise<CheckOutcome> {
  const answer = await h2Request(
    t,
    {
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": `${Math.max(1, Math.ceil(t.timeoutMs))}m`,
      "user-agent": "obiente-router-health/1",
    },
    CHECK_REQUEST,
    signal,
  );
  const httpStatus = Number(answer.headers[":status"] ?? 0);
  if (httpStatus !== 200) {
    return { ok: false, status: httpStatus, error: `HTTP ${httpStatus} (not a gRPC server?)` };
  }
  // A trailers-only answer (an error before any message) carries grpc-status in the headers.
  const code = Number(answer.trailers["grpc-status"] ?? answer.headers["grpc-status"] ?? Number.NaN);
  if (code !== 0) {
    const raw = String(answer.trailers["grpc-message"] ?? answer.headers["grpc-message"] ?? "");
    let message = raw;
    try {
      message = decodeURIComponent(raw);
    } catch {
      // not percent-encoded after all: keep it as sent
    }
    const name = Number.isInteger(code) ? (GRPC_CODES[code] ?? "UNKNOWN") : "missing grpc-status";
    const hint = code === 12 ? " (no grpc.health.v1.Health service)" : "";
    return { ok: false, error: `gRPC ${name}${hint}${message ? `: ${message.slice(0, 200)}` : ""}` };
  }
  const serving = servingStatusOf(grpcMessage(answer.body));
  return serving === 1
    ? { ok: true }
    : { ok: false, error: `gRPC health ${SERVING_STATUS[serving] ?? `status ${serving}`}` };
}
