import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Running, startServer } from "../../src/server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";

// A frozen PostgreSQL (SIGSTOP: the kernel still accepts connections and bytes, nothing answers) on a cluster of
// our own, in a temp folder on a free port: the machine's server is never touched. PostgreSQL only by nature.
const BIN = "/usr/lib/postgresql/15/bin";
const asRoot = process.getuid?.() === 0;
const hasPostgresUser = (() => {
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const available = existsSync(join(BIN, "initdb")) && (!asRoot || (hasPostgresUser && existsSync("/usr/sbin/runuser")));
const BOUND_MS = 15_000; // every wait is bounded by this

function pg(cmd: string, args: string[]): string {
  const bin = join(BIN, cmd);
  return asRoot
    ? execFileSync("runuser", ["-u", "postgres", "--", bin, ...args], { encoding: "utf8", timeout: 60_000 })
    : execFileSync(bin, args, { encoding: "utf8", timeout: 60_000 });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The postmaster and every process it forked (its backends and auxiliary processes). */
function clusterPids(dir: string): number[] {
  const postmaster = Number(readFileSync(join(dir, "postmaster.pid"), "utf8").split("\n")[0]);
  const children = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // /proc/<pid>/stat: "pid (comm) state ppid pgrp …"; comm may hold spaces, so split after the last ')'.
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

function signalCluster(dir: string, signal: "SIGSTOP" | "SIGCONT"): void {
  // The postmaster first when stopping (it can fork no new backend afterwards), last when resuming.
  const pids = clusterPids(dir);
  for (const pid of signal === "SIGSTOP" ? pids : pids.reverse()) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

async function call(url: string, init: RequestInit = {}) {
  // Bounded: a request that hangs for the whole freeze fails the test instead of stalling it.
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(BOUND_MS) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

describe.skipIf(!available)("a frozen PostgreSQL (SIGSTOP) on a cluster of our own", () => {
  let root = "";
  let dir = ""; // the cluster's data folder
  let server: Running | undefined;
  let frozen = false;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "obiente-frozen-pg-"));
    chmodSync(root, 0o777);
    if (asRoot) {
      execFileSync("chown", ["postgres", root]);
    }
    dir = join(root, "data");
    const port = await freePort();
    pg("initdb", ["-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"]);
    pg("pg_ctl", [
      "-D",
      dir,
      "-l",
      join(root, "log"),
      "-w",
      "-t",
      "60",
      "-o",
      `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`,
      "start",
    ]);
    server = await startServer(
      testConfig({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
        DB_QUERY_TIMEOUT_MS: "1500",
        DB_CONNECT_TIMEOUT_SECONDS: "1",
        CONFIG_REFRESH_SECONDS: "0.3",
      }),
    );
    const created = await call(`${server.url}/api/v1/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "dep_before", name: "before" }),
    });
    expect(created.status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    if (frozen) {
      signalCluster(dir, "SIGCONT");
    }
    await server?.close();
    if (dir && existsSync(join(dir, "postmaster.pid"))) {
      pg("pg_ctl", ["-D", dir, "-m", "immediate", "-w", "stop"]);
    }
    if (root) {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it("reports not ready, serves the last config marked stale and answers writes 503 + Retry-After, then recovers on its own", async () => {
    const url = server?.url as string;
    const write = (id: string) =>
      call(`${url}/api/v1/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ id, name: id }),
      });
    const config = () => call(`${url}/traefik/config`, { headers: { authorization: `Bearer ${PROVIDER_TOKEN}` } });
    expect((await call(`${url}/readyz`)).status).toBe(200);
    expect((await config()).headers.get("x-config-stale")).toBeNull();

    signalCluster(dir, "SIGSTOP");
    frozen = true;

    const w = await write("dep_frozen");
    expect(w.status).toBe(503);
    expect(w.headers.get("content-type")).toBe("application/problem+json");
    expect(w.headers.get("retry-after")).toBe("5");
    expect(JSON.parse(w.text)).toMatchObject({ status: 503, code: "DATABASE_UNAVAILABLE" });
    expect(
      (await call(`${url}/api/v1/deployments/dep_before`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))
        .status,
    ).toBe(503);
    const notReady = await waitFor(async () => {
      const r = await call(`${url}/readyz`);
      return r.status === 503 && r;
    }, BOUND_MS);
    expect(JSON.parse(notReady.text)).toMatchObject({ status: "not-ready", stale: true });
    const stale = await config();
    expect(stale.status).toBe(200); // the last good config keeps Traefik routing
    expect(stale.headers.get("x-config-stale")).toBe("true");

    signalCluster(dir, "SIGCONT");
    frozen = false;

    await waitFor(async () => (await call(`${url}/readyz`)).status === 200, BOUND_MS);
    const fresh = await config();
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("x-config-stale")).toBeNull();
    const after = await waitFor(async () => {
      const r = await write("dep_after");
      return r.status === 201 && r;
    }, BOUND_MS);
    expect(JSON.parse(after.text)).toMatchObject({ id: "dep_after" });
  }, 120_000);
});
