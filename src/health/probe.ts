import { Agent, request } from "undici";
import type { Clock } from "../lib/clock.js";
import { statusMatches } from "./state.js";

export interface ProbeTarget {
  url: string;
  timeoutMs: number;
  expectedStatus: string;
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

const MAX_BODY = 64 * 1024;

function cpuOf(text: string): number | undefined {
  try {
    const body = JSON.parse(text) as { cpu?: unknown; cpu_usage?: unknown };
    const v = typeof body.cpu === "number" ? body.cpu : body.cpu_usage;
    return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined;
  } catch {
    return undefined;
  }
}

function describe(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  if (e.name === "TimeoutError" || e.name === "AbortError" || e.code === "UND_ERR_HEADERS_TIMEOUT") {
    return `timeout after ${timeoutMs} ms`;
  }
  const code = e.code ?? e.cause?.code;
  return code ? `connection failed: ${code}` : `request failed: ${e.name ?? "Error"}`;
}

/** GETs the health URL with a hard timeout. Connections are not reused: each probe proves a fresh connect works. */
export function createHttpProbe(clock: Clock): { probe: Probe; close: () => Promise<void> } {
  const dispatcher = new Agent({ pipelining: 0, connect: { timeout: 5000 } });
  const probe: Probe = async (target) => {
    const at = clock.now();
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    const signal = AbortSignal.timeout(target.timeoutMs);
    try {
      const res = await request(target.url, {
        method: "GET",
        dispatcher,
        signal,
        reset: true,
        headers: { "user-agent": "obiente-router-health/1", accept: "application/json, */*;q=0.5" },
      });
      let cpu: number | undefined;
      const type = String(res.headers["content-type"] ?? "");
      if (type.includes("json") && Number(res.headers["content-length"] ?? 0) <= MAX_BODY) {
        let text = "";
        for await (const chunk of res.body) {
          text += chunk.toString();
          if (text.length > MAX_BODY) {
            break;
          }
        }
        cpu = cpuOf(text);
      }
      await res.body.dump().catch(() => {});
      const ok = statusMatches(target.expectedStatus, res.statusCode);
      return {
        ok,
        at,
        durationMs: elapsed(),
        status: res.statusCode,
        cpu,
        error: ok ? undefined : `HTTP ${res.statusCode}`,
      };
    } catch (err) {
      return { ok: false, at, durationMs: elapsed(), error: describe(err, target.timeoutMs) };
    }
  };
  return { probe, close: () => dispatcher.close() };
}
