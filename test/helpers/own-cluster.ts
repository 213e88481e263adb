import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { asRoot, clusterPids, clusterUnavailable, freePort, PG_BIN, unprivilegedTempDir } from "./pg-cluster.js";

// A PostgreSQL cluster of the test's own (initdb in a temp folder, a free port on 127.0.0.1): a test may stop,
// freeze or kill it without touching the machine's shared server. As root, the cluster runs as `postgres`.

/** Why an own cluster cannot be started here, or undefined when it can. */
export function ownClusterUnavailable(): string | undefined {
  return clusterUnavailable;
}

/** Runs a PostgreSQL program (as `postgres` when we are root) without blocking the event loop: the service under
 * test runs in this process and must keep answering while the cluster starts or stops. */
function pg(cmd: string, args: string[]): Promise<void> {
  const bin = join(PG_BIN ?? "", cmd);
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: 90_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });
}

export { freePort };

export interface OwnCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  /** A fast shutdown (`pg_ctl stop -m fast`): sessions are ended, new connections refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP to the postmaster and every process it forked: connections are accepted, nothing answers. */
  freeze(): void;
  thaw(): void;
  /** Thaws if frozen, stops immediately and removes the folder; safe to call twice. */
  destroy(): Promise<void>;
}

/** initdb + start on a free port; fsync off (a test cluster: the machine does not crash under it). */
export async function startOwnCluster(): Promise<OwnCluster> {
  const root = unprivilegedTempDir("obiente-own-pg-");
  const dataDir = join(root, "data");
  const port = await freePort();
  await pg("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync"]);
  let frozen = false;
  let running = false;
  const signal = (sig: "SIGSTOP" | "SIGCONT") => {
    // The postmaster first when stopping (it can fork no new backend afterwards), last when resuming.
    const pids = clusterPids(dataDir);
    for (const pid of sig === "SIGSTOP" ? pids : pids.reverse()) {
      try {
        process.kill(pid, sig);
      } catch {
        // exited meanwhile
      }
    }
  };
  const cluster: OwnCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      const opts = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
      await pg("pg_ctl", ["-D", dataDir, "-l", join(root, "log"), "-w", "-t", "60", "-o", opts, "start"]);
      running = true;
    },
    async stop() {
      await pg("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "-t", "60", "stop"]);
      running = false;
    },
    freeze() {
      signal("SIGSTOP");
      frozen = true;
    },
    thaw() {
      signal("SIGCONT");
      frozen = false;
    },
    async destroy() {
      if (frozen) {
        cluster.thaw();
      }
      if (running && existsSync(join(dataDir, "postmaster.pid"))) {
        await pg("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      }
      running = false;
      rmSync(root, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
