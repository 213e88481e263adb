import { request } from "node:http";

/** One Server-Sent Event as a client parses it (https://html.spec.whatwg.org/#event-stream-interpretation). */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseClient {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  readonly events: SseEvent[];
  /** Comment lines received (keep-alives), without the leading colon. */
  readonly comments: string[];
  /** The `retry:` value last received. */
  retry: number | undefined;
  /** Resolves once `n` events have arrived (bounded wait). */
  waitForEvents(n: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens `url` as an EventSource would (a real HTTP connection), parsing the stream as it arrives. */
export function openSse(url: string, headers: Record<string, string>): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      const waiters: (() => void)[] = [];
      let buffer = "";
      let current: { id?: string; event?: string; data: string[] } = { data: [] };
      let endResolve: () => void = () => {};
      const ended = new Promise<void>((r) => {
        endResolve = r;
      });
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        retry: undefined,
        ended,
        waitForEvents(n, timeoutMs = 5000) {
          return new Promise((ok, fail) => {
            const timer = setTimeout(
              () => fail(new Error(`${events.length} of ${n} events within ${timeoutMs} ms`)),
              timeoutMs,
            );
            const check = () => {
              if (events.length >= n) {
                clearTimeout(timer);
                ok(events.slice(0, n));
                return true;
              }
              return false;
            };
            if (!check()) {
              waiters.push(() => void check());
            }
          });
        },
        close: () => req.destroy(),
      };
      const line = (l: string) => {
        if (l === "") {
          if (current.data.length > 0) {
            events.push({ id: current.id, event: current.event ?? "message", data: current.data.join("\n") });
            for (const w of waiters) {
              w();
            }
          }
          current = { data: [] };
          return;
        }
        if (l.startsWith(":")) {
          comments.push(l.slice(1).trim());
          return;
        }
        const colon = l.indexOf(":");
        const field = colon === -1 ? l : l.slice(0, colon);
        const value = colon === -1 ? "" : l.slice(colon + 1).replace(/^ /, "");
        if (field === "data") {
          current.data.push(value);
        } else if (field === "id") {
          current.id = value;
        } else if (field === "event") {
          current.event = value;
        } else if (field === "retry") {
          client.retry = Number(value);
        }
      };
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        for (let i = buffer.search(/\r\n|\r|\n/); i !== -1; i = buffer.search(/\r\n|\r|\n/)) {
          const eol = buffer.startsWith("\r\n", i) ? 2 : 1;
          line(buffer.slice(0, i));
          buffer = buffer.slice(i + eol);
        }
      });
      res.on("end", endResolve);
      res.on("close", endResolve);
      res.on("error", endResolve);
      resolve(client);
    });
    req.on("error", reject);
    req.end();
  });
}
