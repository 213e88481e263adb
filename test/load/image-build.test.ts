import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// No Docker engine in CI: this runs the Dockerfile's own steps (parsed from it, so the test follows the file) in
// temp folders — the build stage's COPY and RUN, then the runtime stage's — starts the image's CMD there on a free
// port, and runs the HEALTHCHECK command itself against it, up and then stopped.

const ROOT = join(import.meta.dirname, "..", "..");
const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");

/** Steps that only make sense inside an image layer; every other RUN part is executed as written. */
const IMAGE_ONLY = new Map([
  ["npm cache clean --force", "shrinks the layer; here it would empty the machine's shared npm cache"],
  ["mkdir -p /data", "the volume's mount point; the test passes a temp DATA_DIR"],
  ["chown node:node /data", "as above"],
]);

interface Instruction {
  op: string;
  args: string;
}

/** The instructions per stage name (`FROM … AS <name>`), continuation lines joined, comments dropped. */
function stages(text: string): Map<string, Instruction[]> {
  const out = new Map<string, Instruction[]>();
  let current: Instruction[] = [];
  const joined = text.replace(/\\\n\s*/g, "");
  for (const raw of joined.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) {
      continue;
    }
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) {
      throw new Error(`unparsed Dockerfile line: ${line}`);
    }
    if (m[1] === "FROM") {
      current = [];
      out.set(/\bAS\s+(\S+)$/i.exec(m[2])?.[1] ?? m[2], current);
    }
    current.push({ op: m[1], args: m[2] });
  }
  return out;
}

function exec(cmd: string, cwd: string, env: NodeJS.ProcessEnv): void {
  const r = spawnSync("bash", ["-c", cmd], { cwd, env, encoding: "utf8", timeout: 240_000 });
  if (r.status !== 0) {
    throw new Error(`RUN ${cmd} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`.slice(-4000));
  }
}

/** Runs one stage: WORKDIR /app is `dir`, COPY reads the context (or `--from=<stage>`'s folder). */
function runStage(name: string, dir: string, context: string, folders: Map<string, string>, skipped: string[]) {
  const stage = stages(DOCKERFILE).get(name);
  if (!stage) {
    throw new Error(`no stage ${name} in the Dockerfile`);
  }
  mkdirSync(dir, { recursive: true });
  folders.set(name, dir);
  // The machine's npm cache serves the tarballs the lockfile pins (as Docker's layer cache would, mostly).
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_prefer_offline: "true" };
  for (const { op, args } of stage) {
    if (op === "ENV") {
      for (const [, k, v] of args.matchAll(/(\w+)=(\S+)/g)) {
        env[k as string] = v;
      }
    } else if (op === "COPY") {
      const from = /^--from=(\S+)\s+/.exec(args);
      const base = from?.[1] ? (folders.get(from[1]) ?? "") : context;
      const parts = args.replace(/^--from=\S+\s+/, "").split(/\s+/);
      const dest = parts.pop() ?? ".";
      for (const src of parts) {
        const srcPath = join(base, src.replace(/^\/app\//, ""));
        const target = dest.endsWith("/") ? join(dir, dest, src.split("/").pop() ?? src) : join(dir, dest);
        mkdirSync(dirname(target), { recursive: true });
        cpSync(srcPath, target, { recursive: true });
      }
    } else if (op === "RUN") {
      for (const part of args.split("&&").map((p) => p.trim())) {
        if (IMAGE_ONLY.has(part)) {
          skipped.push(part);
        } else {
          exec(part, dir, env);
        }
      }
    }
  }
  return env;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/** The HEALTHCHECK's CMD (exec form), run as Docker would: in the container's environment. */
function healthcheck(env: NodeJS.ProcessEnv): number | null {
  const m = /^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$/.exec(
    stages(DOCKERFILE)
      .get("runtime")
      ?.filter((i) => i.op === "HEALTHCHECK")
      .map((i) => `${i.op} ${i.args}`)[0] ?? "",
  );
  const argv = JSON.parse(m?.[1] ?? "[]") as string[];
  const [cmd, ...rest] = argv;
  if (!cmd) {
    throw new Error("no HEALTHCHECK CMD [exec form] in the runtime stage");
  }
  return spawnSync(cmd, rest, { env, timeout: 10_000 }).status;
}

async function waitForHealthz(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`the service exited (${child.exitCode}):\n${log()}`);
    }
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) {
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no 200 from ${url} within 60 s:\n${log()}`);
}

// Two node_modules trees (~400 MB of small files): on tmpfs when there is one, where writing and removing them is
// several times faster than on a busy disk; not if mounted noexec (Docker's default): npm runs node_modules/.bin.
function scratchBase(): string {
  try {
    const shm = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .find((l) => l.split(" ")[1] === "/dev/shm");
    return shm && !/\bnoexec\b/.test(shm.split(" ")[3] ?? "") ? "/dev/shm" : tmpdir();
  } catch {
    return tmpdir();
  }
}
const temp = mkdtempSync(join(scratchBase(), "obiente-image-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe("the container image's build steps (Dockerfile, run without Docker)", () => {
  it("build and runtime stages succeed, the image's CMD serves, and its HEALTHCHECK passes while up and fails when stopped", async () => {
    // The build context: what `docker build ..` would send (tracked and new files, not git-ignored ones).
    const context = join(temp, "context");
    const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], {
      cwd: ROOT,
      encoding: "utf8",
    })
      .split("\0")
      .filter((f) => f !== "" && existsSync(join(ROOT, f)));
    for (const f of files) {
      mkdirSync(dirname(join(context, f)), { recursive: true });
      cpSync(join(ROOT, f), join(context, f));
    }

    const folders = new Map<string, string>();
    const skipped: string[] = [];
    const started = Date.now();
    runStage("build", join(temp, "build"), context, folders, skipped);
    const runtime = join(temp, "runtime");
    const imageEnv = runStage("runtime", runtime, context, folders, skipped);
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    expect(new Set(skipped)).toEqual(new Set(IMAGE_ONLY.keys())); // nothing else was left out

    // Production dependencies only, and the files read at runtime are there.
    expect(existsSync(join(runtime, "node_modules", "typescript"))).toBe(false);
    expect(existsSync(join(runtime, "node_modules", "vitest"))).toBe(false);
    expect(existsSync(join(runtime, "node_modules", "pino"))).toBe(true);
    for (const f of [
      "dist/src/main.js",
      "dist/src/cli/index.js",
      "dist/src/export/traefik-schema/traefik-v3-file-provider.json",
      "dist/src/export/traefik-schema/NOTICE.md",
      "schema/migrations/meta/_journal.json",
    ]) {
      expect(existsSync(join(runtime, f)), f).toBe(true);
    }

    // The image's CMD, with the image's ENV, on a free port, loopback and a temp data folder.
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...imageEnv,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: join(temp, "data"),
      DATABASE_URL: "", // the image's default: embedded PGlite
      LOG_LEVEL: "warn",
    };
    const cmd = stages(DOCKERFILE)
      .get("runtime")
      ?.find((i) => i.op === "CMD")?.args;
    const [bin, ...args] = JSON.parse(cmd ?? "[]") as string[];
    expect(bin).toBe("node");
    let output = "";
    const child = spawn(process.execPath, args, { cwd: runtime, env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (b: Buffer) => {
      output += b.toString();
    });
    child.stderr?.on("data", (b: Buffer) => {
      output += b.toString();
    });
    try {
      await waitForHealthz(`http://127.0.0.1:${port}/healthz`, child, () => output);
      expect(healthcheck(env)).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
    }
    expect(healthcheck(env)).not.toBe(0);
    // A figure for the note, not an assertion: two `npm ci` and a tsc build.
    process.stdout.write(`image build steps: ${buildSeconds} s\n`);
  }, 300_000);
});
