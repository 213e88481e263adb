import { request } from "undici";

// A poll load generator, run in its own process (`node --import tsx test/helpers/poll-client.ts <url> <token>
// <pollers> <ms>`) so that the service's process measures only its own CPU. Like Traefik's HTTP provider (a Go
// http.Client, which asks for gzip by default), every poller sends `Accept-Encoding: gzip` and polls back to back.
// Prints one JSON line: polls, errors (with the first few), bytes received, and each poll's latency in ms.

const [url = "", token = "", pollers = "50", ms = "30000"] = process.argv.slice(2);
const deadline = Date.now() + Number(ms);
const latencies: number[] = [];
const errors: string[] = [];
let bytes = 0;
let gzipped = 0;

async function poller(): Promise<void> {
  while (Date.now() < deadline) {
    const t0 = performance.now();
    try {
      const r = await request(url, {
        headers: { authorization: `Bearer ${token}`, "accept-encoding": "gzip" },
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const body = Buffer.from(await r.body.arrayBuffer());
      latencies.push(performance.now() - t0);
      bytes += body.length;
      if (r.headers["content-encoding"] === "gzip") {
        gzipped++;
      }
      if (r.statusCode !== 200) {
        errors.push(`HTTP ${r.statusCode}`);
      }
    } catch (err) {
      errors.push(String(err));
    }
  }
}

await Promise.all(Array.from({ length: Number(pollers) }, () => poller()));
process.stdout.write(
  `${JSON.stringify({ polls: latencies.length, errors: errors.slice(0, 5), errorCount: errors.length, bytes, gzipped, latencies })}\n`,
);
