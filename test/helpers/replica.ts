import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export type ReplicaMode = "ok" | "fail" | "slow";

/** A real HTTP replica on 127.0.0.1 whose /health can be made healthy, failing (500), slow, or closed. */
export interface TestReplica {
  port: number;
  mode: ReplicaMode;
  cpu: number | undefined;
  healthHits: number;
  /** Stops listening: further connects are refused. */
  close(): Promise<void>;
}

export async function startReplica(name: string, slowMs = 2000): Promise<TestReplica> {
  const pending = new Set<NodeJS.Timeout>();
  const replica: TestReplica = {
    port: 0,
    mode: "ok",
    cpu: undefined,
    healthHits: 0,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith("/health")) {
      replica.healthHits++;
      if (replica.mode === "slow") {
        const t = setTimeout(() => {
          pending.delete(t);
          res.end("late");
        }, slowMs);
        pending.add(t);
        return;
      }
      const status = replica.mode === "ok" ? 200 : 500;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ name, ...(replica.cpu === undefined ? {} : { cpu: replica.cpu }) }));
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "x-replica": name });
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  replica.port = (server.address() as AddressInfo).port;
  replica.close = () =>
    new Promise<void>((resolve) => {
      for (const t of pending) {
        clearTimeout(t);
      }
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return replica;
}

/** A clock tests move by hand. */
export function fakeClock(start = new Date("2026-06-01T00:00:00Z")) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    advance(seconds: number) {
      now += seconds * 1000;
    },
  };
}
