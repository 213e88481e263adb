import { parseDocument, stringify } from "yaml";
import type { FieldError } from "../lib/problem.js";
import type { StateDiff, StateKind } from "./state-diff.js";
import type { StateDocument } from "./state-schema.js";

// Pure: the document as text (YAML for people and git, JSON on request), parsing it back, and the diff as text.

export type StateFormat = "yaml" | "json";

const YAML_HEADER =
  "# obiente-router routing state (obiente-router dump). Edit, then: obiente-router diff -f <file>; apply -f <file>.\n" +
  "# JSON Schema: GET /api/v1/state/schema (schema/state.schema.json in the repository).\n";

/** The document as text; same state, same bytes. */
export function serializeState(doc: StateDocument, format: StateFormat): string {
  if (format === "json") {
    return `${JSON.stringify(doc, null, 2)}\n`;
  }
  return YAML_HEADER + stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * Parses a state file (YAML 1.2, so JSON too). Aliases are capped (no "billion laughs"), duplicate keys and custom
 * tags are errors; a syntax error names its line.
 */
export function parseStateText(text: string): { ok: true; value: unknown } | { ok: false; errors: FieldError[] } {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, customTags: [], schema: "core" });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0]?.line;
    const message = (first.message.split("\n")[0] ?? "invalid YAML").replace(/ at line \d+, column \d+:?$/, "");
    return { ok: false, errors: [{ location: line ? `line ${line}` : "(document)", message }] };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : "invalid YAML";
    return { ok: false, errors: [{ location: "(document)", message: message ?? "invalid YAML" }] };
  }
}

const SIGN = { create: "+", update: "~", delete: "-" } as const;
const WORD = { create: "created", update: "updated", delete: "deleted" } as const;
const TITLE: Record<StateKind, string> = {
  deployment: "deployments",
  route: "routes",
  health_check: "health checks",
  middlewares: "middlewares",
  split: "traffic splits",
  geo: "geo routing",
  resilience: "resilience",
  certificate: "certificates",
};

const show = (v: unknown) => (v === null || v === undefined ? "(none)" : JSON.stringify(v));

/** The one-line summary: `2 created, 1 updated, 0 deleted`, or `no changes`. */
export function summaryLine(diff: StateDiff): string {
  const { created, updated, deleted } = diff.summary;
  return created + updated + deleted === 0
    ? "no changes"
    : `${created} created, ${updated} updated, ${deleted} deleted`;
}

/** The diff for people: per kind, + created / ~ updated (field: before → after) / - deleted, then the summary. */
export function formatDiff(diff: StateDiff): string {
  const lines: string[] = [];
  for (const kind of Object.keys(TITLE) as StateKind[]) {
    const of = diff.changes.filter((c) => c.kind === kind);
    if (of.length === 0) {
      continue;
    }
    lines.push(`${TITLE[kind]}:`);
    for (const c of of) {
      lines.push(`  ${SIGN[c.op]} ${c.key} (${WORD[c.op]})`);
      for (const f of c.fields) {
        lines.push(
          c.op === "create"
            ? `      ${f.field}: ${show(f.after)}`
            : `      ${f.field}: ${show(f.before)} → ${show(f.after)}`,
        );
      }
    }
  }
  for (const c of diff.conflicts) {
    lines.push(
      `conflict: ${c.domain} on path ${c.path_prefix} (${c.location}) belongs to deployment ${c.owner_deployment_id}, which the file does not list`,
    );
  }
  for (const m of diff.missing_certificates) {
    lines.push(`missing certificate: ${m.fingerprint_sha256} (${m.location}) is not uploaded`);
  }
  if (diff.kept.length > 0) {
    lines.push("not in the file, kept (use --prune to delete):");
    for (const k of diff.kept) {
      lines.push(`  ${k.kind} ${k.key}`);
    }
  }
  lines.push(summaryLine(diff));
  return `${lines.join("\n")}\n`;
}
