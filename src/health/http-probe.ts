import { Agent, buildConnector, request } from "undici";
import type { Clock } from "../lib/clock.js";
import type { BackendTls } from "../render/types.js";
import { urlHost } from "../render/validate.js";
import {
  type CheckOutcome,
  describeError,
  httpOutcome,
  MAX_BODY,
  type Probe,
  type ProbeTarget,
  policyKey,
  tlsOptions,
} from "./probe.js";
import { grpcHealthCheck, h2cGet } from "./probe-h2.js";

const CONNECT_TIMEOUT_MS = 5000;
/** TLS verification policies kept open at once (one undici Agent each), least recently used evicted. */
const MAX_AGENTS = 64;
const HEADERS = { "user-agent": "obiente-router-health/1", accept: "application/json, */*;q=0.5" };

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
    if (agent) {
      agents.delete(key); // re-inserted below: the map's order is least recently used first
    } else {
      const { servername, ...opts } = tlsOptions(tls);
      const base = buildConnector({ timeout: CONNECT_TIMEOUT_MS, maxCachedSessions: 0, ...opts });
      // undici puts the URL's host (or nothing, for an IP) in each request's servername, which wins over the
      // connector's option: override it here so SNI and the name check use the declared server name.
      const connect: buildConnector.connector = (o, cb) => base(servername ? { ...o, servername } : o, cb);
      agent = new Agent({ pipelining: 0, connect });
      // Bounded: a policy no deployment uses any more (its TLS settings changed) ages out instead of leaking.
      const oldest = agents.size >= MAX_AGENTS ? agents.keys().next().value : undefined;
      if (oldest !== undefined) {
        // Agent.close() lets in-flight probes finish first.
        agents
          .get(oldest)
          ?.close()
          .catch(() => {});
        agents.delete(oldest);
      }
    }
    agents.set(key, agent);
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
