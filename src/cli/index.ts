#!/usr/bin/env node
import { errorLine } from "../lib/logger.js";
import { CliError, type Command } from "./common.js";
import { migrateCommand, renderCommand } from "./database.js";
import { exportCommand } from "./export.js";
import { applyCommand, diffCommand, dumpCommand } from "./state.js";

const serveCommand: Command = {
  summary: "run the service (same as npm start)",
  usage:
    "usage: obiente-router serve\n\n  Runs the service (API, provider endpoint, health checks, fallback proxy); configured by the environment.\n",
  async run() {
    await import("../main.js");
    return -1; // main keeps the process alive
  },
};

const proxyCommand: Command = {
  summary: "run only the fallback least-CPU proxy (needs DATABASE_URL)",
  usage:
    "usage: obiente-router proxy\n\n  Runs only the bundled least-CPU fallback proxy; it reads routing from DATABASE_URL.\n",
  async run() {
    await import("../proxy/main.js");
    return -1; // the proxy keeps the process alive
  },
};

/** Every command, in the order `--help` lists them. */
const COMMANDS: Record<string, Command> = {
  serve: serveCommand,
  proxy: proxyCommand,
  migrate: migrateCommand,
  render: renderCommand,
  export: exportCommand,
  dump: dumpCommand,
  diff: diffCommand,
  apply: applyCommand,
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  return `usage: obiente-router <command> [options]\n\n${lines.join("\n")}\n\n  obiente-router <command> --help shows a command's options.\n`;
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    process.stderr.write(`obiente-router: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(command.usage);
    return 0;
  }
  return command.run(rest);
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) {
      process.exitCode = code; // let stdout drain; nothing else keeps the process alive
    }
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`obiente-router: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    // parseArgs rejects unknown or malformed options: the user's input, so exit 2 with its message.
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`obiente-router: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    // A database error's message can quote query parameters: say what failed, not with which values.
    process.stderr.write(`obiente-router: ${errorLine(err)}\n`);
    process.exitCode = 1;
  },
);
