import type { Dirent } from "node:fs";
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from "node:fs/promises";
import { extname, join } from "node:path";
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from "diff";
import { type ExportPlan, OWNED_MARKER, SHARED_FILE } from "./file-layout.js";

// The shell half of the export: writes a plan into the watched folder so Traefik never reads half a file, touches
// only files it owns, and leaves unchanged files alone (same bytes, same mtime: `git status` stays clean).

/** Traefik's file provider loads these extensions only (pkg/provider/file/file.go isFileSupported). */
const LOADED = new Set([".yml", ".yaml", ".toml"]);
/** Our temp files: `.tmp` is not loaded, so Traefik ignores one that is half written. */
const TEMP_RE = /^\.obiente.*\.\d+\.tmp$/;
/** In the secrets folder, the names this exporter wrote (PEM files carry no marker of their own). */
const MANIFEST = ".obiente-export-manifest.json";

/** A file in the way that the exporter did not write (no marker): it refuses to touch it (the CLI exits 2). */
export class ForeignFile extends Error {}

export interface WriteOptions {
  dir: string;
  /** Where `plan.secrets` go (0700 folder, 0600 files); also where stale ones from an earlier run are removed. */
  secretsDir: string;
  /** Mode of the config files: 0o600 when secrets are inline. */
  fileMode: number;
}

export interface WriteResult {
  written: string[];
  unchanged: string[];
  removed: string[];
}

interface Existing {
  text: string;
  ours: boolean;
}

/** The folder's Traefik-loaded files (top level), with whether each carries our marker. */
async function readLoaded(dir: string): Promise<Map<string, Existing>> {
  const out = new Map<string, Existing>();
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return out;
    }
    throw err;
  }
  for (const e of entries) {
    if (e.isFile() && LOADED.has(extname(e.name).toLowerCase())) {
      const text = await readFile(join(dir, e.name), "utf8");
      out.set(e.name, { text, ours: text.startsWith(OWNED_MARKER) });
    }
  }
  return out;
}

function refuseForeign(plan: ExportPlan, existing: Map<string, Existing>, dir: string): void {
  const foreign = [...plan.files.keys()].filter((n) => existing.get(n)?.ours === false);
  if (foreign.length > 0) {
    throw new ForeignFile(
      `${join(dir, foreign[0] ?? "")} was not written by obiente-router export (no "${OWNED_MARKER}" first line); ` +
        "move it away or pick another --dir",
    );
  }
}

/** Writes `data` to dir/name through a temp file: fsync, rename over the old file, so a reader sees old or new. */
async function writeAtomic(dir: string, name: string, data: string, mode: number): Promise<void> {
  const tmp = join(dir, `.${name.startsWith("obiente") ? "" : "obiente-"}${name}.${process.pid}.tmp`);
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // open's mode is masked by the umask
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  await rename(tmp, join(dir, name));
}

/** fsync of the folder: the renames and unlinks are durable once this returns. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes the file when its bytes or mode differ; true when it wrote. */
async function putFile(dir: string, name: string, data: string, mode: number, old: string | undefined) {
  const path = join(dir, name);
  if (old === data) {
    const st = await stat(path);
    if ((st.mode & 0o777) !== mode) {
      await chmod(path, mode);
    }
    return false;
  }
  await writeAtomic(dir, name, data, mode);
  return true;
}

async function readManifest(secretsDir: string): Promise<string[]> {
  try {
    const parsed = JSON.parse(await readFile(join(secretsDir, MANIFEST), "utf8")) as { files?: unknown };
    return Array.isArray(parsed.files) ? parsed.files.filter((f): f is string => typeof f === "string") : [];
  } catch {
    return [];
  }
}

/** Records the secret files we own (before they are referenced, and again once stale ones are gone). */
async function writeManifest(secretsDir: string, files: string[]): Promise<void> {
  const text = `${JSON.stringify({ files: files.sort() })}\n`;
  if ((await readIfExists(join(secretsDir, MANIFEST))) !== text) {
    await writeAtomic(secretsDir, MANIFEST, text, 0o600);
    await syncDir(secretsDir);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  return readFile(path, "utf8").catch(() => undefined);
}

/** Writes the plan's key files (0600, folder 0700) and records them; returns the names owned before. */
async function writeSecrets(plan: ExportPlan, secretsDir: string, result: WriteResult): Promise<string[]> {
  const oldSecrets = await readManifest(secretsDir);
  const oldText = new Map<string, string | undefined>();
  for (const name of plan.secrets.keys()) {
    const old = await readIfExists(join(secretsDir, name));
    if (old !== undefined && old !== plan.secrets.get(name) && !oldSecrets.includes(name)) {
      throw new ForeignFile(`${join(secretsDir, name)} was not written by obiente-router export; move it away`);
    }
    oldText.set(name, old);
  }
  if (plan.secrets.size === 0) {
    return oldSecrets;
  }
  await mkdir(secretsDir, { recursive: true, mode: 0o700 });
  if ((await readIfExists(join(secretsDir, ".gitignore"))) === undefined) {
    // The default secrets folder sits inside the (git) export folder: keep its keys out of commits.
    await writeAtomic(secretsDir, ".gitignore", "*\n", 0o644);
  }
  for (const [name, data] of plan.secrets) {
    if (await putFile(secretsDir, name, data, 0o600, oldText.get(name))) {
      result.written.push(join(secretsDir, name));
      await syncDir(secretsDir); // durable before a config file names it
    }
  }
  await writeManifest(secretsDir, [...new Set([...oldSecrets, ...plan.secrets.keys()])]);
  return oldSecrets;
}

/**
 * Writes the plan: secret files first (a config must never name a missing file: Traefik would read the path as
 * PEM), then the shared file (the middlewares others refer to), then each deployment's, then removes our stale
 * files. Traefik reloads on every folder event but throttles (static `providers.providersThrottleDuration`, 2 s default),
 * so it normally applies the final state. Nothing is written when a target exists without our marker.
 */
export async function writeExport(plan: ExportPlan, opts: WriteOptions): Promise<WriteResult> {
  const { dir, secretsDir } = opts;
  await mkdir(dir, { recursive: true });
  const existing = await readLoaded(dir);
  refuseForeign(plan, existing, dir);
  const result: WriteResult = { written: [], unchanged: [], removed: [] };
  for (const e of await readdir(dir)) {
    if (TEMP_RE.test(e)) {
      await unlink(join(dir, e)).catch(() => {}); // left by an export that died mid-write
    }
  }

  const oldSecrets = await writeSecrets(plan, secretsDir, result);

  const order = [...plan.files.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  for (const name of order) {
    const data = plan.files.get(name) ?? "";
    if (await putFile(dir, name, data, opts.fileMode, existing.get(name)?.text)) {
      result.written.push(name);
    } else {
      result.unchanged.push(name);
    }
  }
  for (const [name, e] of existing) {
    if (e.ours && !plan.files.has(name)) {
      await unlink(join(dir, name));
      result.removed.push(name);
    }
  }
  if (result.written.length + result.removed.length > 0) {
    await syncDir(dir);
  }

  const stale = oldSecrets.filter((n) => !plan.secrets.has(n));
  if (stale.length > 0) {
    for (const name of stale) {
      await unlink(join(secretsDir, name)).catch(() => {});
      result.removed.push(join(secretsDir, name));
    }
    await writeManifest(secretsDir, [...plan.secrets.keys()]);
  }
  return result;
}

const rank = (name: string) => (name.startsWith(`${SHARED_FILE}.`) ? 0 : 1);

/** Hides secret values in diff lines: PEM key material and the fallback proxy secret never reach a CI log. */
function redact(line: string, secrets: readonly string[]): string {
  if (/PRIVATE KEY/.test(line) || /^[+\- ]\s*"?[A-Za-z0-9+/=]{40,}"?$/.test(line)) {
    return `${line[0]}    [PEM data hidden]`;
  }
  let out = line;
  for (const s of secrets) {
    out = out.replaceAll(s, "[secret hidden]");
  }
  return /X-Obiente-Proxy-Secret/i.test(out) && !out.includes("{{") && !out.includes("[secret hidden]")
    ? out.replace(/(X-Obiente-Proxy-Secret["']?\s*[:=]\s*).*/i, "$1[secret hidden]")
    : out;
}

/**
 * `--check`: a unified diff from the folder's files to the plan's (only Traefik-loaded files; secret files are not
 * compared: they are not in git), empty when equal. Secret values are hidden. Throws ForeignFile like a write.
 */
export async function diffExport(plan: ExportPlan, dir: string, secrets: readonly string[] = []): Promise<string> {
  const existing = await readLoaded(dir);
  refuseForeign(plan, existing, dir);
  const names = [...new Set([...plan.files.keys(), ...[...existing].filter(([, e]) => e.ours).map(([n]) => n)])];
  const parts: string[] = [];
  for (const name of names.sort()) {
    const old = existing.get(name)?.text;
    const next = plan.files.get(name);
    if (old === next) {
      continue;
    }
    const patch = createTwoFilesPatch(
      old === undefined ? "/dev/null" : `a/${name}`,
      next === undefined ? "/dev/null" : `b/${name}`,
      old ?? "",
      next ?? "",
      undefined,
      undefined,
      { context: 3, headerOptions: FILE_HEADERS_ONLY },
    );
    parts.push(
      patch
        .split("\n")
        .map((l) => (/^[+\- ]/.test(l) && !/^(---|\+\+\+) /.test(l) ? redact(l, secrets) : l))
        .join("\n"),
    );
  }
  return parts.join("");
}
