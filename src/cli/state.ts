import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import { Conflict } from "../db/errors.js";
import { applyState, dumpState, type StateOutcome } from "../export/state-apply.js";
import { parseStateText, type StateFormat, serializeState } from "../export/state-format.js";
import { type StateDocument, validateState } from "../export/state-schema.js";
import { defaultResolverFor } from "../provider/settings.js";
import { CliError, type Command, configWith, DATABASE_OPTIONS, EXIT_TABLE, isHttpUrl, withDatabase } from "./common.js";
import { callRemote, type Remote } from "./remote.js";

// dump / diff / apply of the declarative routing state, on the database or through a running instance's API.

const TARGET = `  Where: --url postgres://… (or DATABASE_URL, or the embedded PGlite in DATA_DIR) works on the database;
  --url http(s)://host:port with --token (or OBIENTE_URL / OBIENTE_TOKEN) goes through a running instance's API.
  While the service runs on embedded PGlite it owns the folder: use its API then.
  --init creates the embedded database when DATA_DIR has none (otherwise refused, exit 2).`;

const TARGET_OPTIONS = { ...DATABASE_OPTIONS, token: { type: "string" } } as const;

type Target = { remote: Remote } | { config: Config };

/** --url, else OBIENTE_URL (a running instance), else the database of the environment. */
function targetOf(values: { url?: string | undefined; token?: string | undefined }): Target {
  const url = values.url ?? process.env.OBIENTE_URL;
  if (isHttpUrl(url)) {
    return { remote: { url, token: values.token ?? process.env.OBIENTE_TOKEN } };
  }
  return { config: configWith(url) };
}

/** Opens the database for `fn` (exit 3 when in use or unreachable); a conflict is the file's to fix (exit 2). */
async function onDatabase<T>(config: Config, init: boolean, fn: (handle: DbHandle) => Promise<T>): Promise<T> {
  try {
    return await withDatabase(config, fn, {
      init,
      inUseHint:
        "To work on the running service, go through its API: --url http://host:port --token <admin token> (or OBIENTE_URL / OBIENTE_TOKEN).",
    });
  } catch (err) {
    throw err instanceof Conflict ? new CliError(err.message) : err;
  }
}

function readInput(file: string | undefined): { name: string; text: string } {
  if (!file) {
    throw new CliError("give the state file with -f <file> (-f - reads stdin)");
  }
  try {
    return { name: file === "-" ? "stdin" : file, text: readFileSync(file === "-" ? 0 : file, "utf8") };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new CliError(`cannot read ${file}${typeof code === "string" ? ` (${code})` : ""}`);
  }
}

/** Parses and validates the file as the API would; every problem is named by its place in the file. */
function documentOf(input: { name: string; text: string }, config: Config): StateDocument {
  const parsed = parseStateText(input.text);
  const checked = parsed.ok ? validateState(parsed.value, { trustedProxies: config.TRUSTED_PROXY_CIDRS }) : parsed;
  if (!checked.ok) {
    const lines = checked.errors.slice(0, 50).map((e) => `\n  ${e.location}: ${e.message}`);
    const more = checked.errors.length > 50 ? `\n  … and ${checked.errors.length - 50} more` : "";
    throw new CliError(`${input.name} is not a valid state file:${lines.join("")}${more}`);
  }
  return checked.doc;
}

/** Writes through a temp file in the same folder and a rename, so no reader sees half a file. */
function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

export const dumpCommand: Command = {
  summary: "print the desired routing state (YAML or JSON)",
  usage: `usage: obiente-router dump [-o <file>] [--format yaml|json] [--url …] [--token …]

  Prints the routing state (deployments, routes, health-check overrides, middlewares, certificate references) as
  a document that diff and apply take back. Same state, same bytes.

  -o, --output <file>   write to this file (atomically) instead of stdout
  --format yaml|json    default yaml (json when the -o file ends in .json)

${TARGET}
${EXIT_TABLE}
`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...TARGET_OPTIONS, output: { type: "string", short: "o" }, format: { type: "string" } },
    });
    const format = values.format ?? (values.output?.endsWith(".json") ? "json" : "yaml");
    if (format !== "yaml" && format !== "json") {
      throw new CliError("--format must be yaml or json");
    }
    const target = targetOf(values);
    const text =
      "remote" in target
        ? await callRemote(target.remote, "GET", `/api/v1/state?format=${format}`)
        : serializeState(await onDatabase(target.config, values.init, (h) => dumpState(h.db)), format as StateFormat);
    const out = format === "json" && "remote" in target ? `${JSON.stringify(JSON.parse(text), null, 2)}\n` : text;
    if (values.output) {
      writeAtomically(values.output, out);
    } else {
      process.stdout.write(out);
    }
    return 0;
  },
};

/** Runs diff or apply on the chosen target. */
async function compare(
  values: { url?: string; token?: string; init: boolean; file?: string; prune?: boolean; "dry-run"?: boolean },
  apply: boolean,
): Promise<StateOutcome> {
  const input = readInput(values.file);
  const prune = values.prune === true;
  const dryRun = !apply || values["dry-run"] === true;
  const target = targetOf(values);
  if ("remote" in target) {
    const path = apply ? `/api/v1/state/apply?prune=${prune}&dry_run=${dryRun}` : `/api/v1/state/diff?prune=${prune}`;
    const text = await callRemote(target.remote, "POST", path, { text: input.text, type: "application/yaml" });
    return JSON.parse(text) as StateOutcome;
  }
  const doc = documentOf(input, target.config);
  const defaultResolver = defaultResolverFor(target.config);
  return onDatabase(target.config, values.init, (h) => applyState(h.db, doc, { prune, dryRun, defaultResolver }));
}

const COMPARE_OPTIONS = {
  ...TARGET_OPTIONS,
  file: { type: "string", short: "f" },
  prune: { type: "boolean" },
} as const;

export const diffCommand: Command = {
  summary: "compare a state file with the current state",
  usage: `usage: obiente-router diff -f <file> [--prune] [--url …] [--token …]

  Shows what apply would change: per kind, + created / ~ updated (field: before → after) / - deleted, then a
  summary line. Nothing is written.

  -f, --file <file>   the state file (YAML or JSON); - reads stdin
  --prune             also show what --prune would delete (deployments and certificates not in the file)

${TARGET}
${EXIT_TABLE}
`,
  async run(args) {
    const { values } = parseArgs({ args, options: COMPARE_OPTIONS });
    const out = await compare(values, false);
    process.stdout.write(out.text);
    return out.changes.length > 0 ? 1 : 0;
  },
};

export const applyCommand: Command = {
  summary: "make the current state match a state file (one transaction)",
  usage: `usage: obiente-router apply -f <file> [--dry-run] [--prune] [--url …] [--token …]

  Makes the routing state match the file in one transaction: all of it or nothing. Deployments the file lists are
  described completely by it; others are kept unless --prune. A route owned by a deployment the file does not
  list fails the whole apply (exit 2). Applying the same file again reports "no changes" and writes nothing.

  -f, --file <file>   the state file (YAML or JSON); - reads stdin
  --dry-run           show the diff, write nothing
  --prune             delete deployments and certificates the file does not list

${TARGET}
${EXIT_TABLE}
`,
  async run(args) {
    const { values } = parseArgs({ args, options: { ...COMPARE_OPTIONS, "dry-run": { type: "boolean" } } });
    const out = await compare(values, true);
    process.stdout.write(out.text);
    if (out.applied) {
      process.stdout.write(`applied: ${out.summary_line}\n`);
    } else if (out.dry_run && out.changes.length > 0) {
      process.stdout.write("dry run: nothing written\n");
    }
    return 0;
  },
};
