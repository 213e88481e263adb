import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A PostgreSQL cluster of a test's own (initdb/pg_ctl in a temp folder, on a free loopback port), for tests that
// stop, freeze or restart the database: the machine's shared server is never touched. initdb refuses to run as root,
// so as root every pg command runs as the `postgres` user (runuser).

export const PG_BIN = (() => {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? join(base, versions[0], "bin") : undefined;
})();
/** initdb and pg_ctl refuse root: as root, every pg command runs as `postgres`. */
export const asRoot = process.getuid?.() === 0;

function hasUser(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Why a cluster of our own cannot be started here, or undefined when it can. */
export const clusterUnavailable: string | undefined = !PG_BIN
  ? "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
  : asRoot && !(hasUser("postgres") && existsSync("/usr/sbin/runuser"))
    ? "running as root without a postgres user and runuser (initdb refuses root)"
    : undefined;

/** Runs `cmd` as the unprivileged user when we are root (initdb, pg_ctl and pgbouncer refuse root). */
export function runUnprivileged(bin: string, args: string[]): string {
  return asRoot
    ? execFileSync("runuser", ["-u", "postgres", "--", bin, ...args], { encoding: "utf8", timeout: 60_000 })
    : execFileSync(bin, args, { encoding: "utf8", timeout: 60_000 });
}

/** A temp folder the unprivileged user can write (chowned to postgres when we are root). */
export function unprivilegedTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o777);
  if (asRoot) {
    execFileSync("chown", ["postgres", dir]);
  }
  return dir;
}

/** A free TCP port on 127.0.0.1 (closed again; bound by the caller right after). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface PgCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust auth). */
  url: string;
  /** The data folder. */
  dir: string;
  start(): void;
  /** `pg_ctl stop -m fast`: clients see their connections closed by the server. */
  stop(): void;
  /** SIGSTOP / SIGCONT on the postmaster and every process it forked. */
  signal(signal: "SIGSTOP" | "SIGCONT"): void;
  /** Stops (immediately) and deletes everything. */
  destroy(): void;
}

/** initdb + start a cluster in a temp folder on a free port; check `clusterUnavailable` first. */
export async function startCluster(prefix = "obiente-pg-"): Promise<PgCluster> {
  if (!PG_BIN || clusterUnavailable) {
    throw new Error(`cannot start a PostgreSQL cluster: ${clusterUnavailable}`);
  }
  const bin = PG_BIN;
  const root = unprivilegedTempDir(prefix);
  const dir = join(root, "data");
  const port = await freePort();
  const pg = (cmd: string, args: string[]) => runUnprivileged(join(bin, cmd), args);
  pg("initdb", ["-D", dir, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const running = () => existsSync(join(dir, "postmaster.pid"));
  const cluster: PgCluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    start() {
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
    },
    stop() {
      pg("pg_ctl", ["-D", dir, "-m", "fast", "-w", "-t", "60", "stop"]);
    },
    signal(signal) {
      // The postmaster first when stopping (it can fork no new backend afterwards), last when resuming.
      const pids = clusterPids(dir);
      for (const pid of signal === "SIGSTOP" ? pids : pids.reverse()) {
        try {
          process.kill(pid, signal);
        } catch {
          // exited meanwhile
        }
      }
    },
    destroy() {
      if (running()) {
        pg("pg_ctl", ["-D", dir, "-m", "immediate", "-w", "stop"]);
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
  cluster.start();
  return cluster;
}

/** The postmaster and every process it forked (its backends and auxiliary processes). */
export function clusterPids(dir: string): number[] {
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
