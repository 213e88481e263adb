import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const ENTRY = fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url));
/** tsx resolved from here, so a test may run the CLI from any working directory. */
const TSX = import.meta.resolve("tsx");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Environment on top of a minimal one (PATH, HOME); nothing else of the test process leaks in. */
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the process after this long (default 60 s); the result then has code -1. */
  timeoutMs?: number;
}

/** Runs `obiente-router <args>` from source (through tsx) in a child process, as an operator would. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", TSX, ENTRY, ...args],
      {
        cwd: opts.cwd,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...opts.env },
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
