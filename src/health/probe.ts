import { createHash } from "node:crypto";
import type { HealthMode, Protocol } from "../../schema/enums.js";
import type { BackendTls } from "../render/types.js";
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
