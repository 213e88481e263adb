import { execFile } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// The README's shell examples as tests: pull the ```sh blocks out of a section, read the status each curl documents
// (`# → 201`), and run them with bash and curl, recording the status of every curl call they make.

/** The ```sh blocks under `## <title>` (up to the next `## ` heading), in order. */
export function shellBlocks(markdown: string, title: string): string[] {
  const start = markdown.indexOf(`\n## ${title}\n`);
  if (start < 0) {
    throw new Error(`no "## ${title}" section`);
  }
  const next = markdown.indexOf("\n## ", start + 1);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
}

/** The statuses the block's comments document, one `# → NNN` per curl call, in order. */
export function documentedStatuses(block: string): number[] {
  return [...block.matchAll(/# → (\d{3})\b/g)].map((m) => Number(m[1]));
}

/** How many curl commands the block holds (lines that start one, or `VAR=$(curl …`; continuation lines do not). */
export function curlCommands(block: string): number {
  return block.split("\n").filter((line) => /^\s*(\w+=\$\()?curl\s/.test(line)).length;
}

// A curl that also dumps the response headers and appends the final status to $STATUS_LOG; exported, so scripts
// started from the block (bash examples/*.sh) record theirs too. stdout and the exit code are curl's own.
const PRELUDE = `set -euo pipefail
curl() {
  local head rc=0
  head="$(mktemp)"
  command curl -D "$head" "$@" || rc=$?
  awk '/^HTTP\\//{s=$2} END{print (s=="" ? "000" : s)}' "$head" >> "$STATUS_LOG"
  rm -f "$head"
  return "$rc"
}
export -f curl
`;

export interface ShellRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The status of every curl call, in order (000: no answer). */
  statuses: number[];
}

/** Runs `script` with bash in `cwd`, with only `env` (plus PATH and HOME) in its environment; bounded by 120 s. */
export function runShell(script: string, opts: { cwd: string; env: Record<string, string> }): Promise<ShellRun> {
  const logDir = mkdtempSync(join(tmpdir(), "obiente-sh-"));
  const log = join(logDir, "statuses");
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-c", PRELUDE + script],
      {
        cwd: opts.cwd,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...opts.env, STATUS_LOG: log },
        timeout: 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        let statuses: number[] = [];
        try {
          statuses = readFileSync(log, "utf8").split("\n").filter(Boolean).map(Number);
        } catch {
          // no curl ran
        }
        rmSync(logDir, { recursive: true, force: true });
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, statuses });
      },
    );
  });
}

/** Whether bash, curl and jq are installed (the README's examples need all three). */
export function hasShellTools(): boolean {
  const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
  return ["bash", "curl", "jq"].every((tool) =>
    dirs.some((dir) => {
      try {
        accessSync(join(dir, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    }),
  );
}
