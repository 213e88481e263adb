import { execFile, execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A PostgreSQL cluster of the test's own (initdb in a temp folder, a free port on 127.0.0.1): a test may stop,
// freeze or kill it without touching the machine's shared server. As root, the cluster runs as `postgres`.

const BIN = (() => {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] === undefined ? undefined : join(root, versions[0], "bin");
})();
const asRoot = process.getuid?.() === 0;

function hasUser(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Why an own cluster cannot be started here, or undefined when it can. */
export function ownClusterUnavailable(): string | undefined {
  if (!BIN) {
    return "no /usr/lib/postgresql/*/bin/initdb";
  }
  if (asRoot && !(hasUser("postgres") && existsSync("/usr/sbin/runuser"))) {
    return "running as root without a postgres user and runuser";
  }
  return undefined;
}

/** Runs a PostgreSQL program (as `postgres` when we are root) without blocking the event loop: the service under
 * test runs in this process and must keep answering while the cluster starts or stops. */
function pg(cmd: string, args: string[]): Promise<void> {
  const bin = join(BIN ?? "", cmd);
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: 90_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });
}

/** A free TCP port on 127.0.0.1 (free when asked; good enough for a test's own servers). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

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

/** The postmaster and every process it forked (backends and auxiliary processes). */
function clusterPids(dataDir: string): number[] {
  const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  const children = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after the last ')'.
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

/** initdb + start on a free port; fsync off (a test cluster: the machine does not crash under it). */
export async function startOwnCluster(): Promise<OwnCluster> {
  const root = mkdtempSync(join(tmpdir(), "obiente-own-pg-"));
  chmodSync(root, 0o777);
  if (asRoot) {
    execFileSync("chown", ["postgres", root]);
  }
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
