import { isDeepStrictEqual } from "node:util";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { PROXY_SECRET_HEADER } from "../render/names.js";
import type { TraefikDocument } from "../render/types.js";
import { childOf, type ExportFormat, type ExportPlan, envToken, type SecretsMode } from "./file-layout.js";
import { expandGoTemplate } from "./go-template.js";
import { traefikSchemaProblems } from "./traefik-schema.js";

// Checks a plan before anything is written: each file, read the way Traefik reads it (Go template, then YAML/TOML),
// is the document meant and passes Traefik's schema; no name is defined twice; together they are the whole config;
// and, unless secrets are inline, no secret of the config is in a file the provider loads. Pure.

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/** What Traefik decodes from one exported file, with env actions reading as their tokens (for comparison). */
export function decodeExported(text: string, format: ExportFormat): unknown {
  const expanded = expandGoTemplate(text, envToken);
  // An empty document (only the header) decodes to nothing: Traefik applies an empty configuration.
  const doc: unknown = format === "yaml" ? parseYaml(expanded) : parseToml(expanded);
  // Plain objects (smol-toml builds null-prototype ones), so a deep comparison sees only the data.
  return JSON.parse(JSON.stringify(doc ?? {})) as unknown;
}

/** The secret strings of a rendered config: private keys and the fallback proxy secret. */
export function secretValues(config: TraefikDocument): string[] {
  const out: string[] = [];
  for (const c of config.tls?.certificates ?? []) {
    out.push(c.keyFile);
  }
  for (const mw of Object.values(config.http?.middlewares ?? {})) {
    const v = (mw.headers?.customRequestHeaders as Json | undefined)?.[PROXY_SECRET_HEADER];
    if (typeof v === "string" && v.length > 0) {
      out.push(v);
    }
  }
  return out;
}

/** Problems that make a plan unfit to write (one line each), empty when it is fine. */
export function planProblems(
  config: TraefikDocument,
  plan: ExportPlan,
  opts: { format: ExportFormat; secrets: SecretsMode },
): string[] {
  const problems: string[] = [];
  const union: Json = {};
  const owner = new Map<string, string>();
  for (const [name, text] of plan.files) {
    let doc: unknown;
    try {
      doc = decodeExported(text, opts.format);
    } catch (err) {
      problems.push(`${name}: does not read back (${(err as Error).message})`);
      continue;
    }
    if (!isDeepStrictEqual(doc, plan.documents.get(name))) {
      problems.push(`${name}: does not read back as the rendered config`);
    }
    problems.push(...traefikSchemaProblems(doc).map((p) => `${name}: ${p}`));
    mergeInto(union, doc, name, owner, problems);
  }
  if (!isDeepStrictEqual(union, plan.transformed)) {
    problems.push("the files together are not the rendered config");
  }
  if (opts.secrets !== "inline") {
    const secrets = secretValues(config);
    for (const [name, text] of plan.files) {
      if (secrets.some((s) => text.includes(s)) || text.includes("PRIVATE KEY")) {
        problems.push(`${name}: holds secret material although --secrets is ${opts.secrets}`);
      }
    }
  }
  return problems;
}

/** Adds one file's names to the union; a name already defined by another file is a problem (Traefik skips it). */
function mergeInto(union: Json, doc: unknown, file: string, owner: Map<string, string>, problems: string[]) {
  for (const [part, section] of Object.entries(isObj(doc) ? doc : {})) {
    if (part !== "http" || !isObj(section)) {
      if (part in union) {
        problems.push(`${file}: ${part} is also defined in ${owner.get(part)}`);
      }
      union[part] = section;
      owner.set(part, file);
      continue;
    }
    const http = childOf(union, "http");
    for (const [kind, table] of Object.entries(section)) {
      const into = childOf(http, kind);
      for (const [n, v] of Object.entries(isObj(table) ? table : {})) {
        const key = `http.${kind}.${n}`;
        if (owner.has(key)) {
          problems.push(`${file}: ${key} is also defined in ${owner.get(key)}`);
        }
        owner.set(key, file);
        into[n] = v;
      }
    }
  }
}
