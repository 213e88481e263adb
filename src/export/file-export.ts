import { resolve } from "node:path";
import type { TraefikDocument } from "../render/types.js";
import { ExportInvalid, type ExportPlan, type LayoutOptions, planExport } from "./file-layout.js";
import { diffExport, type WriteResult, writeExport } from "./file-writer.js";
import { planProblems, secretValues } from "./traefik-check.js";

// One export of a rendered config into a folder for Traefik's file provider: plan (pure), check, then write or
// diff. The CLI and the tests call these; the source of the config (database or a running instance) is the caller's.

export interface FileExportOptions extends Omit<LayoutOptions, "secretsPath"> {
  dir: string;
  /** Default `<dir>/.secrets`: a sub-folder; Traefik reads only .yml/.yaml/.toml files from it. */
  secretsDir?: string;
  /** The secrets folder as Traefik sees it; default: its absolute path here (the same mount in Traefik's container). */
  secretsPath?: string;
}

/** The secrets folder options resolve to. */
export function secretsDirOf(opts: FileExportOptions): string {
  return resolve(opts.secretsDir ?? resolve(opts.dir, ".secrets"));
}

/** The plan for `config`, checked; throws ExportInvalid listing the problems (nothing is written then). */
export function checkedPlan(config: TraefikDocument, opts: FileExportOptions): ExportPlan {
  const secretsPath = (opts.secretsPath ?? secretsDirOf(opts)).replace(/\\/g, "/").replace(/\/+$/, "");
  const plan = planExport(config, { format: opts.format, layout: opts.layout, secrets: opts.secrets, secretsPath });
  const problems = planProblems(config, plan, opts);
  if (problems.length > 0) {
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : "";
    throw new ExportInvalid(`the rendered config is not valid for Traefik: ${problems.slice(0, 3).join("; ")}${more}`);
  }
  return plan;
}

/** Writes the export; files not ours are never touched, unchanged ones are not rewritten. */
export async function exportToFolder(config: TraefikDocument, opts: FileExportOptions): Promise<WriteResult> {
  const plan = checkedPlan(config, opts);
  return writeExport(plan, {
    dir: opts.dir,
    secretsDir: secretsDirOf(opts),
    fileMode: opts.secrets === "inline" ? 0o600 : 0o644,
  });
}

/** `--check`: the unified diff from the folder to the export (secret values hidden), empty when equal. */
export async function diffFolder(config: TraefikDocument, opts: FileExportOptions): Promise<string> {
  return diffExport(checkedPlan(config, opts), opts.dir, secretValues(config));
}

/** One line for the log: what an export changed. */
export function summary(dir: string, r: WriteResult): string {
  return `${dir}: ${r.written.length} written, ${r.unchanged.length} unchanged, ${r.removed.length} removed`;
}
