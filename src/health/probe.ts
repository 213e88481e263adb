import { createHash } from "node:crypto";
import { Agent, buildConnector, request } from "undici";
import type { HealthMode, Protocol } from "../../schema/enums.js";
import type { Clock } from "../lib/clock.js";
import type { BackendTls } from "../render/types.js";
import { urlHost } from "../render/validate.js";
import { grpcHealthCheck, h2cGet } from "./probe-h2.js";
import { statusMatches } from "./state.js";

export interface ProbeTarget {
  /** The deployment's route protocol: `http`, `https` (TLS, verified per `tls`) or `h2c` (HTTP/2 prior knowledge). */
  protocol: Protocol;
  address: string;
  port: number;
  path: string;
  /** `grpc`: grpc.health.v1.Health/Check; `http`: GET of `path` with `expectedStatus`. */
  mode: HealthMode;
  /** https only; null = system roots, the address as server name. */
  tls: BackendTls | null;
  timeoutMs: number;
  expectedStatus: string;
  /** Aborts the probe early (the checker stopping). */
  signal?: AbortSignal | undefined;
}

export interface ProbeResult {
  ok: boolean;
  at: Date;
  durationMs: number;
  status?: number | undefined;
  error?: string | undefined;
  /** CPU usage (0–100) when the /health answer is JSON with a numeric `cpu` or `cpu_usage`. */
  cpu?: number | undefined;
}

export type Probe = (target: ProbeTarget) => Promise<ProbeResult>;

/** What one check found, before timing is added. */
export type CheckOutcome = Omit<ProbeResult, "at" | "durationMs">;

export const MAX_BODY = 64 * 1024;
const CONNECT_TIMEOUT_MS = 5000;
const HEADERS = { "user-agent": "obiente-router-health/1", accept: "application/json, */*;q=0.5" };

export function cpuOf(text: string): number | undefined {
  try {
    const body = JSON.parse(text) as { cpu?: unknown; cpu_usage?: unknown };
    const v = typeof body.cpu === "number" ? body.cpu : body.cpu_usage;
    return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined;
  } catch {
    return undefined;
  }
}

/** A status check on an HTTP answer, with the CPU reading of a JSON body. */
export function httpOutcome(spec: string, status: number, body: string | undefined): CheckOutcome {
  const ok = statusMatches(spec, status);
  return { ok, status, cpu: body === undefined ? undefined : cpuOf(body), error: ok ? undefined : `HTTP ${status}` };
}

const CERT_ERROR = /CERT|SIGNATURE|ALTNAME|ISSUER|VERIFY/;

/** A short, stable reason for last_error: timeouts and refused connections by name, TLS failures say "certificate". */
export function describeError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError" || e.code === "UND_ERR_HEADERS_TIMEOUT" || e.code === "UND_ERR_CONNECT_TIMEOUT") {
    return `timeout after ${timeoutMs} ms`;
  }
  if (e.name === "AbortError") {
    return "probe cancelled";
  }
  const code = e.code ?? e.cause?.code;
  if (code && CERT_ERROR.test(code)) {
    const message = (e.code ? e.message : e.cause?.message) ?? "";
    return `TLS certificate rejected (${code}): ${message.slice(0, 200)}`;
  }
  return code ? `connection failed: ${code}` : `request failed: ${e.name ?? "Error"}`;
}

/** The TLS options of a verification policy; never insecure unless the deployment says so. */
export function tlsOptions(tls: BackendTls | null): {
  ca?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
} {
  return {
    ...(tls?.caPem ? { ca: tls.caPem } : {}),
    ...(tls?.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
    ...(tls?.serverName ? { servername: tls.serverName } : {}),
  };
}

/** One Agent per verification policy, keyed deterministically (a CA bundle by its SHA-256). */
export function policyKey(tls: BackendTls | null): string {
  const ca = tls?.caPem ? createHash("sha256").update(tls.caPem).digest("hex") : "";
  return JSON.stringify([tls?.serverName ?? "", ca, tls?.insecureSkipVerify === true]);
}

/**
 * Probes a replica the way its deployment is served: HTTP/1.1 over `http` or `https` (undici, one Agent per TLS
 * policy, no session resumption: each probe proves a fresh handshake verifies), HTTP/2 prior knowledge for `h2c`,
 * or the gRPC health protocol when the mode is `grpc` (the default for h2c). Every probe has a hard timeout.
 */
export function createHttpProbe(clock: Clock): { probe: Probe; close: () => Promise<void> } {
  const agents = new Map<string, Agent>();
  const agentFor = (tls: BackendTls | null): Agent => {
    const key = policyKey(tls);
    let agent = agents.get(key);
    if (!agent) {
      const { servername, ...opts } = tlsOptions(tls);
      const base = buildConnector({ timeout: CONNECT_TIMEOUT_MS, maxCachedSessions: 0, ...opts });
      // undici puts the URL's host (or nothing, for an IP) in each request's servername, which wins over the
      // connector's option: override it here so SNI and the name check use the declared server name.
      const connect: buildConnector.connector = (o, cb) => base(servername ? { ...o, servername } : o, cb);
      agent = new Agent({ pipelining: 0, connect });
      agents.set(key, agent);
    }
    return agent;
  };

  const httpCheck = async (t: ProbeTarget, signal: AbortSignal): Promise<CheckOutcome> => {
    const scheme = t.protocol === "https" ? "https" : "http";
    const res = await request(`${scheme}://${urlHost(t.address)}:${t.port}${t.path}`, {
      method: "GET",
      dispatcher: agentFor(t.protocol === "https" ? t.tls : null),
      signal,
      reset: true,
      headers: HEADERS,
    });
    let body: string | undefined;
    const type = String(res.headers["content-type"] ?? "");
    if (type.includes("json") && Number(res.headers["content-length"] ?? 0) <= MAX_BODY) {
      body = "";
      for await (const chunk of res.body) {
        body += chunk.toString();
        if (body.length > MAX_BODY) {
          break;
        }
      }
    }
    await res.body.dump().catch(() => {});
    return httpOutcome(t.expectedStatus, res.statusCode, body);
  };

  const probe: Probe = async (target) => {
    const at = clock.now();
    const started = performance.now();
    const timeout = AbortSignal.timeout(target.timeoutMs);
    const signal = target.signal ? AbortSignal.any([timeout, target.signal]) : timeout;
    try {
      const outcome =
        target.mode === "grpc"
          ? await grpcHealthCheck(target, signal)
          : target.protocol === "h2c"
            ? await h2cGet(target, signal)
            : await httpCheck(target, signal);
      return { ...outcome, at, durationMs: Math.round((performance.now() - started) * 10) / 10 };
    } catch (err) {
      // A timeout surfaces as the aborted signal's reason on some paths: name it by the signal, not the error.
      const error = timeout.aborted ? `timeout after ${target.timeoutMs} ms` : describeError(err, target.timeoutMs);
      return { ok: false, at, durationMs: Math.round((performance.now() - started) * 10) / 10, error };
    }
  };
  return {
    probe,
    close: async () => {
      const all = [...agents.values()];
      agents.clear();
      await Promise.all(all.map((a) => a.close()));
    },
  };
}
