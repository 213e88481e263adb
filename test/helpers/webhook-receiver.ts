import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { listenOnLoopback } from "./loopback.js";

/** One request a receiver got, as it arrived. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent (what a signature is computed over). */
  body: string;
}

export interface Receiver {
  /** The URL to subscribe (http://127.0.0.1:port/hook). */
  readonly url: string;
  readonly received: Received[];
  /** Statuses to answer with, in order; once used up, `fallback` (200 unless set). */
  answers: number[];
  fallback: number;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 that records every request and answers the statuses it is told to. */
export async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const state = { answers: [] as number[], fallback: 200 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(state.answers.shift() ?? state.fallback, { "content-type": "text/plain" });
      res.end("ok");
    });
  });
  const { port, close } = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    get answers() {
      return state.answers;
    },
    set answers(v) {
      state.answers = v;
    },
    get fallback() {
      return state.fallback;
    },
    set fallback(v) {
      state.fallback = v;
    },
    close,
  };
}

/**
 * The README's verification recipe, written independently of the service's code: `sha256=` + hex HMAC-SHA256 keyed
 * with the secret, over `<X-Obiente-Timestamp>.<raw body>`, compared in constant time, refused when older than
 * `toleranceSeconds`.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): boolean {
  const timestamp = String(headers["x-obiente-timestamp"] ?? "");
  const given = String(headers["x-obiente-signature"] ?? "");
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) {
    return false;
  }
  const expected = `sha256=${createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex")}`;
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}
