import { parseArgs } from "node:util";
import { isDatabaseUnavailable } from "../db/errors.js";
import { errorLine } from "../lib/logger.js";
import { packageVersion } from "../lib/package-root.js";
import { CliError, type Command, EXIT, EXIT_TABLE } from "./common.js";
import { migrateCommand, renderCommand } from "./database.js";
import { exportCommand } from "./export.js";
import { applyCommand, diffCommand, dumpCommand } from "./state.js";

// The process env is read by the service itself (src/config/env.ts); here only the arguments decide what runs.

const serveCommand: Command = {
  summary: "run the service (same as npm start)",
  usage: `usage: obiente-router serve

  Runs the service (API, provider endpoint, health checks, fallback proxy), configured by the environment
  (README: Configuration). Without DATABASE_URL it creates the embedded database in DATA_DIR (default ./data)
  on first start, with its generated secrets. Logs go to stdout (JSON lines; LOG_FORMAT=pretty for humans).

${EXIT_TABLE}
`,
  async run(args) {
    parseArgs({ args, options: {} }); // no options: anything given is a mistake (exit 2), not ignored
    await import("../main.js");
    return -1; // main keeps the process alive
  },
};

const proxyCommand: Command = {
  summary: "run only the fallback least-CPU proxy (needs DATABASE_URL)",
  usage: `usage: obiente-router proxy

  Runs only the bundled least-CPU fallback proxy; it reads routing from DATABASE_URL (PostgreSQL: embedded
  PGlite belongs to the service, which then runs the proxy itself).

${EXIT_TABLE}
`,
  async run(args) {
    parseArgs({ args, options: {} });
    await import("../proxy/main.js");
    return -1; // the proxy keeps the process alive
  },
};

/** Every command, in the order `--help` lists them. */
export const COMMANDS: Record<string, Command> = {
  serve: serveCommand,
  proxy: proxyCommand,
  migrate: migrateCommand,
  render: renderCommand,
  export: exportCommand,
  dump: dumpCommand,
  diff: diffCommand,
  apply: applyCommand,
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  return `usage: obiente-router <command> [options]
       obiente-router --version | --help

${lines.join("\n")}

  obiente-router <command> --help shows a command's options and does nothing else.
  Data goes to stdout, diagnostics to stderr.

${EXIT_TABLE}
`;
}

const HELP = ["--help", "-h"];

/** Where a command's output goes: stdout for data (and help), stderr for diagnostics. */
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOutput: Output = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs `obiente-router <argv>`: the exit code, or -1 when a server keeps running. `--help` (anywhere) prints the
 * usage and returns before any command code runs: it never opens a database, creates a folder or starts a server.
 */
export async function dispatch(argv: string[], out: Output = processOutput): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" || (name !== undefined && HELP.includes(name))) {
    out.stdout(usage());
    return EXIT.ok;
  }
  if (name === "--version" || name === "-v") {
    out.stdout(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  const command = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    const what = name === undefined ? "no command given" : `unknown command ${JSON.stringify(name)}`;
    out.stderr(`obiente-router: ${what}\n\n${usage()}`);
    return EXIT.invalid;
  }
  // Before any parsing: help never opens a database, creates a folder or starts a server.
  if (rest.some((a) => HELP.includes(a))) {
    out.stdout(command.usage);
    return EXIT.ok;
  }
  return command.run(rest);
}

/** The exit code and the one line an error is reported with. */
export function failure(err: unknown): { code: number; line: string } {
  if (err instanceof CliError) {
    return { code: err.exitCode, line: err.message };
  }
  const e = err as { code?: unknown; path?: unknown };
  // parseArgs rejects unknown or malformed options: the user's input, so exit 2 with its message.
  if (typeof e.code === "string" && e.code.startsWith("ERR_PARSE_ARGS")) {
    return { code: EXIT.invalid, line: `${(err as Error).message} (--help lists the options)` };
  }
  if (isDatabaseUnavailable(err)) {
    return { code: EXIT.unreachable, line: "could not reach the database (check --url / DATABASE_URL)" };
  }
  // A file the user named (-o, -f, --dir) that cannot be read or written.
  if (typeof e.code === "string" && /^E[A-Z]+$/.test(e.code) && typeof e.path === "string") {
    return { code: EXIT.invalid, line: errorLine(err) };
  }
  // A database error's message can quote query parameters: say what failed, not with which values.
  return { code: EXIT.failed, line: errorLine(err) };
}
