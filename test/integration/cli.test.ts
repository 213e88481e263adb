import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it, vi } from "vitest";
import { COMMANDS, dispatch, failure } from "../../src/cli/commands.js";
import { CliError, EXIT } from "../../src/cli/common.js";
import { openDb } from "../../src/db/client.js";
import { runCli } from "../helpers/cli.js";

// The real binary costs ~5-8 s a call (tsx + PGlite), so the logic is checked in-process and the child processes
// are kept to what only they can show: exit codes, the two streams, and what is (not) left on disk.

const ROOT = join(import.meta.dirname, "..", "..");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const SLOW = 90_000;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "obiente-cli-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs.splice(0)) {
    rmSync(d, { recursive: true, force: true });
  }
});

/** Runs the dispatcher in-process, collecting both streams. */
async function inProcess(argv: string[]) {
  const out = { stdout: "", stderr: "" };
  const code = await dispatch(argv, {
    stdout: (t) => {
      out.stdout += t;
    },
    stderr: (t) => {
      out.stderr += t;
    },
  });
  return { code, ...out };
}

describe("obiente-router --help, --version and mistakes (in-process)", () => {
  it.each(Object.keys(COMMANDS))("%s --help prints its usage on stdout, exits 0 and runs nothing", async (name) => {
    const command = COMMANDS[name];
    if (!command) {
      throw new Error(name);
    }
    const run = vi.spyOn(command, "run");
    for (const flag of ["--help", "-h"]) {
      // Also after options that would otherwise act (--init creates a database).
      expect(await inProcess([name, "--init", flag])).toEqual({ code: 0, stdout: command.usage, stderr: "" });
    }
    expect(run).not.toHaveBeenCalled();
    run.mockRestore();
    expect(command.usage.startsWith(`usage: obiente-router ${name}`)).toBe(true);
    expect(command.usage).toContain("exit codes:"); // the one table, in every command's help
  });

  it("the top-level help lists every command and the exit codes; --version prints the package version", async () => {
    const help = await inProcess(["--help"]);
    expect(help.code).toBe(0);
    for (const name of Object.keys(COMMANDS)) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    }
    expect(help.stdout).toContain("  3  the database or the instance could not be reached");
    expect(await inProcess(["-v"])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
  });

  it("no command or an unknown one: usage on stderr, exit 2", async () => {
    const none = await inProcess([]);
    expect(none).toMatchObject({ code: 2, stdout: "" });
    expect(none.stderr).toMatch(/^obiente-router: no command given\n\nusage: /);
    const unknown = await inProcess(["frobnicate"]);
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toMatch(/^obiente-router: unknown command "frobnicate"\n/);
  });

  it("maps failures to the documented exit codes", () => {
    expect(failure(new CliError("x", EXIT.unreachable))).toEqual({ code: 3, line: "x" });
    const parse = Object.assign(new TypeError("Unknown option '--bogus'"), { code: "ERR_PARSE_ARGS_UNKNOWN_OPTION" });
    expect(failure(parse)).toEqual({ code: 2, line: "Unknown option '--bogus' (--help lists the options)" });
    expect(failure(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).code).toBe(3);
    const file = Object.assign(new Error("EACCES: permission denied, open '/x'"), { code: "EACCES", path: "/x" });
    expect(failure(file).code).toBe(2);
    expect(failure(new Error("something else")).code).toBe(4);
  });
});

describe("the obiente-router binary", () => {
  it(
    "--help does nothing else: serve starts no server, migrate --init creates no folder, and --version",
    async () => {
      const dir = tempDir();
      const env = { DATA_DIR: join(dir, "data") };
      const serve = await runCli(["serve", "--help"], { env, timeoutMs: 30_000 });
      expect(serve).toEqual({ code: 0, stdout: COMMANDS.serve?.usage, stderr: "" });
      const migrate = await runCli(["migrate", "--init", "--help"], { env });
      expect(migrate).toEqual({ code: 0, stdout: COMMANDS.migrate?.usage, stderr: "" });
      expect(readdirSync(dir)).toEqual([]); // no data folder, no secrets
      expect(await runCli(["--version"])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    },
    SLOW,
  );

  it.runIf(process.env.DATABASE_URL)(
    "migrate --help on a PostgreSQL database applies no migration",
    async () => {
      const base = process.env.DATABASE_URL ?? "";
      const name = `obiente_cli_${randomBytes(6).toString("hex")}`;
      const admin = postgres(base, { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database "${name}"`);
      const url = new URL(base);
      url.pathname = `/${name}`;
      const db = postgres(url.toString(), { max: 1, onnotice: () => {} });
      try {
        const r = await runCli(["migrate", "--url", url.toString(), "--help"]);
        expect(r).toMatchObject({ code: 0, stderr: "" });
        const tables = await db`select table_schema, table_name from information_schema.tables
          where table_schema not in ('pg_catalog', 'information_schema')`;
        expect(tables).toEqual([]);
      } finally {
        await db.end();
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      }
    },
    SLOW,
  );

  it(
    "an unknown option exits 2 with one line on stderr and nothing on stdout",
    async () => {
      const r = await runCli(["render", "--bogus"]);
      expect(r).toMatchObject({ code: 2, stdout: "" });
      expect(r.stderr).toMatch(/^obiente-router: Unknown option '--bogus'.* \(--help lists the options\)\n$/);
    },
    SLOW,
  );

  it(
    "without a database in DATA_DIR it refuses (exit 2) instead of creating one; --init creates it",
    async () => {
      // As from another directory: DATA_DIR (default ./data) names a folder that does not exist.
      const dir = tempDir();
      const env = { DATA_DIR: join(dir, "data") };
      const refused = await runCli(["render"], { env });
      expect(refused).toEqual({
        code: 2,
        stdout: "",
        stderr: `obiente-router: no database in DATA_DIR=${env.DATA_DIR}; run from the right directory, set DATA_DIR or DATABASE_URL, or pass --init to create one\n`,
      });
      expect(readdirSync(dir)).toEqual([]);

      const init = await runCli(["migrate", "--init"], { env });
      expect(init).toEqual({ code: 0, stdout: "migrations applied (pglite)\n", stderr: "" });
      expect(existsSync(join(env.DATA_DIR, "pglite"))).toBe(true);
      const render = await runCli(["render", "--format", "json"], { env });
      expect(render).toEqual({ code: 0, stdout: "{}\n", stderr: "" }); // an empty database renders nothing
    },
    SLOW,
  );

  it(
    "a PGlite folder held by the service: exit 3 and one line naming the holder, --url and the API",
    async () => {
      const dataDir = tempDir();
      const held = await openDb({ DATA_DIR: dataDir });
      try {
        for (const args of [["render"], ["dump"]]) {
          const r = await runCli(args, { env: { DATA_DIR: dataDir } });
          expect(r.code).toBe(3);
          expect(r.stdout).toBe("");
          const lines = r.stderr.trimEnd().split("\n");
          expect(lines).toHaveLength(1);
          expect(lines[0]).toMatch(new RegExp(`held by pid ${process.pid} `));
          expect(lines[0]).toContain("--url");
          expect(lines[0]).toMatch(/API/);
        }
      } finally {
        await held.close();
      }
    },
    SLOW,
  );
});
