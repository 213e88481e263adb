#!/usr/bin/env node
import { dispatch, failure } from "./commands.js";

// The `obiente-router` binary: runs the command, sets the exit code (src/cli/common.ts EXIT), reports one line.
dispatch(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) {
      process.exitCode = code; // let stdout drain; nothing else keeps the process alive
    }
  },
  (err: unknown) => {
    const { code, line } = failure(err);
    process.stderr.write(`obiente-router: ${line}\n`);
    process.exitCode = code;
  },
);
