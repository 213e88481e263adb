import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { traefikSchema, traefikSchemaProblems } from "../../src/export/traefik-schema.js";

// The schema and its overlay live in src/export/traefik-schema.ts: the file export validates with the same one.
export { traefikSchema };

/** What a test may accept from the semantics check, each with its reason written next to it in the test. */
export interface TraefikCheckOptions {
  /** `warn:` lines matching one of these are accepted (never `error:` lines). */
  acceptWarnings?: RegExp[];
  /** The empty document `{}` is intended (Traefik applies it and removes every router of the provider). */
  allowEmpty?: boolean;
  /** The provider the document is served by: `http` (GET /traefik/config, the default) or `file` (the export). */
  provider?: "http" | "file";
  /** A Traefik static config other than the shipped traefik/traefik.yml (e.g. other entry point names). */
  staticConfig?: unknown;
  /** The oldest Traefik the document must work on (TRAEFIK_VERSION); default 3.6.0, the README's minimum. */
  minVersion?: "3.6.0" | "3.7.0";
}

interface SemanticsOptions {
  static?: unknown;
  minVersion?: string;
  allowEmpty?: boolean;
  provider?: string;
}

/** The part of ../shared/traefik/semantics/semantics.mjs (read-only, beside the repository) that tests use. */
interface SemanticsModule {
  validate(text: string, opts: SemanticsOptions): string[];
}

// Relative to the repository root, so a fresh clone with shared/ beside it (CI) resolves it too.
const SEMANTICS_URL = new URL("../../../shared/traefik/semantics/semantics.mjs", import.meta.url);
const semantics = (await import(SEMANTICS_URL.href)) as SemanticsModule;
/** traefik/traefik.yml, the static config we ship. */
export const STATIC_CONFIG = parseYaml(
  readFileSync(new URL("../../traefik/traefik.yml", import.meta.url), "utf8"),
) as unknown;

/**
 * The shipped static config plus entry points and (HTTP-01) certificate resolvers a test configures under other
 * names (ENTRYPOINT_WEB, DEFAULT_CERT_RESOLVER, …), so its rendered config can be checked against them.
 */
export function staticConfigWith(extra: { entryPoints?: string[]; resolvers?: string[] }): unknown {
  const base = structuredClone(STATIC_CONFIG) as {
    entryPoints: Record<string, unknown>;
    certificatesResolvers: Record<string, unknown>;
  };
  for (const [i, name] of (extra.entryPoints ?? []).entries()) {
    base.entryPoints[name] = { address: `:${8000 + i}` };
  }
  for (const name of extra.resolvers ?? []) {
    base.certificatesResolvers[name] = {
      acme: { storage: `/letsencrypt/${name}.json`, httpChallenge: { entryPoint: "web" } },
    };
  }
  return base;
}

/**
 * Validates a rendered dynamic config (an object, or the served JSON/YAML text) against the JSON schema and
 * Traefik v3.7.9's semantics (the decoder, the runtime build and the hazards, with our shipped static config, or
 * `opts.staticConfig`): readable problems, empty when valid.
 */
export function traefikSchemaErrors(config: unknown, opts: TraefikCheckOptions = {}): string[] {
  // A served body (JSON or YAML text) is checked as Traefik reads it: its bytes.
  const doc: unknown = typeof config === "string" ? parseYaml(config) : config;
  const errors = traefikSchemaProblems(doc);
  const text = typeof config === "string" ? config : JSON.stringify(config);
  const lines = semantics.validate(text, {
    static: opts.staticConfig ?? STATIC_CONFIG,
    minVersion: opts.minVersion ?? "3.6.0",
    allowEmpty: opts.allowEmpty ?? false,
    provider: opts.provider ?? "http",
  });
  const accepted = opts.acceptWarnings ?? [];
  return [...errors, ...lines.filter((l) => !(l.startsWith("warn:") && accepted.some((re) => re.test(l))))];
}
