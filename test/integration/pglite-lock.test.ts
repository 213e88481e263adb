import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDb } from "../../src/db/client.js";
import { bootId, FOREIGN_LOCK_STALE_MS } from "../../src/lib/lock.js";

// PGlite only: the lock guards the embedded database folder; PostgreSQL is shared by design.
const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "src", "cli", "index.ts");
const HOLDER = join(ROOT, "test", "fixtures", "hold-pglite.ts");
const WAIT_MS = 60_000;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
    }
  }
});

function start(args: string[], dataDir: string): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ROOT,
    env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "error", FALLBACK_ENABLED: "false" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.push(child);
  return child;
}

/** Runs to completion (bounded) and collects the output. */
function run(args: string[], dataDir: string): Promise<Exit> {
  const child = start(args, dataDir);
  child.stdin?.end();
  return exited(child);
}

function exited(child: ChildProcess): Promise<Exit> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no exit within ${WAIT_MS} ms: ${stderr}`)), WAIT_MS);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a process holding DATA_DIR's PGlite open; resolves once it says "open". */
async function holder(dataDir: string): Promise<ChildProcess> {
  const child = start([HOLDER, dataDir], dataDir);
  await new Promise<void>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`holder not open within ${WAIT_MS} ms: ${err}`)), WAIT_MS);
    child.stderr?.on("data", (b: Buffer) => {
      err += b.toString();
    });
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("open\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`holder exited (${code}): ${err}`));
    });
  });
  return child;
}

const tempDataDir = () => mkdtempSync(join(tmpdir(), "obiente-lock-"));

describe("one PGlite folder, one process", () => {
  it("refuses a second process (render, migrate) naming the holder and the way out, then opens once the first has stopped", async () => {
    const dir = tempDataDir();
    const first = await holder(dir);

    const render = await run([CLI, "render", "--format", "json"], dir);
    expect(render.code).toBe(3);
    expect(render.stdout).toBe("");
    expect(render.stderr).toContain(`held by pid ${first.pid} on ${hostname()} since 20`);
    expect(render.stderr).toContain("Stop that process first");
    expect(render.stderr).toContain("GET /traefik/config");
    expect(render.stderr).toContain("--url");
    expect(render.stderr).toContain("DATABASE_URL");
    const migrate = await run([CLI, "migrate"], dir);
    expect(migrate.code).toBe(3);
    expect(migrate.stderr).toContain(`held by pid ${first.pid}`);

    first.stdin?.end(); // the holder closes its database and exits
    expect((await exited(first)).code).toBe(0);
    expect(existsSync(join(dir, "pglite.lock"))).toBe(false);

    const after = await run([CLI, "render", "--format", "json"], dir);
    expect(after.stderr).toBe("");
    expect(after.code).toBe(0);
    expect(typeof JSON.parse(after.stdout)).toBe("object"); // an empty database renders an empty config
  }, 240_000);

  it("takes over the lock of a process that was killed (SIGKILL leaves the lock file behind)", async () => {
    const dir = tempDataDir();
    const first = await holder(dir);
    const gone = exited(first);
    first.kill("SIGKILL");
    await gone;
    expect(JSON.parse(readFileSync(join(dir, "pglite.lock"), "utf8")).pid).toBe(first.pid);

    const migrate = await run([CLI, "migrate"], dir);
    expect(migrate.stderr).toBe("");
    expect(migrate.code).toBe(0);
  }, 240_000);

  it("takes over a lock whose pid is gone, and refuses a live one, in the same process too", async () => {
    const dir = tempDataDir();
    const dead = spawn(process.execPath, ["-e", ""]);
    const deadPid = dead.pid;
    await exited(dead);
    const lockFile = join(dir, "pglite.lock");
    const lockOf = (pid: number, host = hostname()) =>
      `${JSON.stringify({ pid, host, boot: bootId(), since: "2020-01-01T00:00:00.000Z", token: "x" })}\n`;
    writeFileSync(lockFile, lockOf(deadPid ?? 0));

    const handle = await openDb({ DATA_DIR: dir });
    expect(JSON.parse(readFileSync(lockFile, "utf8")).pid).toBe(process.pid);
    await expect(openDb({ DATA_DIR: dir })).rejects.toThrow(/held by pid \d+ .*Stop that process first/s);
    await handle.close();
    expect(existsSync(lockFile)).toBe(false);
  }, 120_000);

  it("waits out a lock from another host while its heartbeat is fresh, and takes it over once it is old", async () => {
    const dir = tempDataDir();
    const lockFile = join(dir, "pglite.lock");
    writeFileSync(
      lockFile,
      `${JSON.stringify({ pid: 1, host: "other-host", boot: "b", since: "2020-01-01T00:00:00.000Z", token: "y" })}\n`,
    );
    await expect(openDb({ DATA_DIR: dir })).rejects.toThrow(
      "held by pid 1 on other-host since 2020-01-01T00:00:00.000Z",
    );

    const old = new Date(Date.now() - FOREIGN_LOCK_STALE_MS - 5000);
    utimesSync(lockFile, old, old);
    const handle = await openDb({ DATA_DIR: dir });
    await handle.close();
  }, 120_000);
});
