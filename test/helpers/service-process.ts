import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ADMIN_TOKEN, PROVIDER_TOKEN } from "./app.js";
import { freePort } from "./own-cluster.js";

// The service as an operator runs it (`node src/main.ts`, through tsx), in a child process a test can kill -9.
const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

export interface ServiceProcess {
  readonly url: string;
  readonly pid: number;
  /** stdout and stderr so far (for a failure message). */
  output(): string;
  /** SIGKILL, resolved once the process is gone (reaped: its pid is free, as after a crash). */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Starts the service with `env` on top of test tokens and a free port; resolves when /readyz answers 200. */
export async function startServiceProcess(
  env: Record<string, string>,
  readyWithinMs = 120_000,
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      HOST: "127.0.0.1",
      PORT: String(port),
      ADMIN_TOKEN,
      PROVIDER_TOKEN,
      HEALTH_ENABLED: "false",
      FALLBACK_ENABLED: "false",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const proc: ServiceProcess = {
    url,
    pid: child.pid ?? -1,
    output: () => out,
    async kill9() {
      child.kill("SIGKILL");
      await exited(child);
    },
    async stop() {
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.kill("SIGTERM");
      await exited(child);
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + readyWithinMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the service exited before it was ready:\n${out.slice(-2000)}`);
    }
    try {
      const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) {
        return proc;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.kill9();
      throw new Error(`the service was not ready within ${readyWithinMs} ms:\n${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
