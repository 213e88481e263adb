import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { applyState, dumpState } from "../../export/state-apply.js";
import { STATE_KINDS } from "../../export/state-diff.js";
import { parseStateText, serializeState } from "../../export/state-format.js";
import { type StateDocument, stateJsonSchema, validateState } from "../../export/state-schema.js";
import { defaultResolverFor } from "../../provider/settings.js";
import { ADMIN, contracts, json, problems, READ } from "../contract.js";
import type { AppEnv, Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { invalid } from "../validate.js";

// The declarative routing state over HTTP (issue 12 §2): the same dump / diff / apply as the CLI, for remote use.

const JSON_TYPE = /^application\/(.+\+)?json\b/i;
const YAML_TYPE = /^(application|text)\/(x-)?yaml\b/i;

const DumpQuery = z.strictObject({
  format: z.enum(["json", "yaml"]).default("json").meta({ description: "json (default) or yaml (application/yaml)" }),
});
const flag = (description: string) =>
  z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true")
    .meta({ description });
const PRUNE = "Also delete deployments and certificates the document does not list.";
const DiffQuery = z.strictObject({ prune: flag(PRUNE) });
const ApplyQuery = z.strictObject({ prune: flag(PRUNE), dry_run: flag("Compare only; write nothing.") });

const StateDocumentView = z.looseObject({
  version: z.number(),
  deployments: z.array(z.looseObject({ id: z.string(), name: z.string() })),
  certificates: z.array(z.looseObject({ fingerprint_sha256: z.string() })),
});

const StateOutcomeView = z.object({
  applied: z.boolean().meta({ description: "Something was written (false for a diff, a dry run or no changes)." }),
  dry_run: z.boolean(),
  prune: z.boolean(),
  summary: z.object({ created: z.number(), updated: z.number(), deleted: z.number() }),
  summary_line: z.string().meta({ example: "2 created, 1 updated, 0 deleted" }),
  changes: z.array(
    z.object({
      kind: z.enum(STATE_KINDS),
      op: z.enum(["create", "update", "delete"]),
      key: z.string(),
      fields: z.array(z.object({ field: z.string(), before: z.unknown(), after: z.unknown() })),
    }),
  ),
  kept: z.array(z.object({ kind: z.enum(STATE_KINDS), key: z.string() })),
  text: z.string().meta({ description: "The diff as `obiente-router diff` prints it." }),
});

/** The document as JSON or YAML; validated by the handler (a YAML body has no JSON schema to hand to the router). */
const stateBody = {
  required: true,
  content: {
    "application/json": {
      schema: { type: "object" as const, description: "The state document (JSON Schema: GET /api/v1/state/schema)." },
    },
    "application/yaml": { schema: { type: "string" as const, description: "The state document as YAML." } },
  },
};
const WRITE_PROBLEMS = problems(400, 401, 409, 413, 415, 503);

const getState = createRoute({
  method: "get",
  path: "/",
  summary: "The desired routing state (dump)",
  security: READ,
  request: { query: DumpQuery },
  responses: {
    200: {
      description: "The state document (JSON, or YAML with ?format=yaml)",
      content: {
        "application/json": { schema: StateDocumentView },
        "application/yaml": { schema: z.string() },
      },
    },
    ...problems(400, 401, 503),
  },
});

const getSchema = createRoute({
  method: "get",
  path: "/schema",
  summary: "JSON Schema of the state document",
  security: READ,
  responses: { 200: json(z.looseObject({}), "JSON Schema (draft 2020-12)"), ...problems(401) },
});

const postDiff = createRoute({
  method: "post",
  path: "/diff",
  summary: "Compare a state document with the current state",
  security: READ,
  request: { query: DiffQuery, body: stateBody },
  responses: { 200: json(StateOutcomeView, "The differences (nothing written)"), ...WRITE_PROBLEMS },
});

const postApply = createRoute({
  method: "post",
  path: "/apply",
  summary: "Make the current state match a state document (one transaction)",
  security: ADMIN,
  request: { query: ApplyQuery, body: stateBody },
  responses: { 200: json(StateOutcomeView, "Applied, or no changes, or the dry run's diff"), ...WRITE_PROBLEMS },
});

/** Reads, parses and validates the body (JSON or YAML); every problem is a 400 naming `body.<location>`. */
async function readDocument(c: Context<AppEnv>, trustedProxies: readonly string[]): Promise<StateDocument> {
  const type = c.req.header("content-type") ?? "";
  const isJson = JSON_TYPE.test(type);
  if (!isJson && !YAML_TYPE.test(type)) {
    throw new HttpProblem(problem("UNSUPPORTED_MEDIA_TYPE", "Send the state as application/json or application/yaml."));
  }
  const text = await c.req.text();
  let raw: unknown;
  if (isJson) {
    try {
      raw = JSON.parse(text);
    } catch {
      throw new HttpProblem(problem("MALFORMED_JSON", "The request body is not valid JSON."));
    }
  } else {
    const parsed = parseStateText(text);
    if (!parsed.ok) {
      throw invalid(parsed.errors.map((e) => ({ location: `body (${e.location})`, message: e.message })));
    }
    raw = parsed.value;
  }
  const v = validateState(raw, { trustedProxies });
  if (!v.ok) {
    throw invalid(v.errors.map((e) => ({ location: `body.${e.location}`, message: e.message })));
  }
  return v.doc;
}

/** Dump, schema, diff and apply of the declarative routing state. */
export function stateApi({ handle: { db }, config }: Deps) {
  const defaultResolver = defaultResolverFor(config);
  const schema = stateJsonSchema();
  return contracts()
    .openapi(getState, async (c) => {
      const doc = await dumpState(db);
      if (c.req.valid("query").format === "yaml") {
        return c.body(serializeState(doc, "yaml"), 200, { "content-type": "application/yaml; charset=utf-8" });
      }
      return c.json(doc, 200);
    })
    .openapi(getSchema, (c) => c.json(schema, 200))
    .openapi(postDiff, async (c) => {
      const doc = await readDocument(c, config.TRUSTED_PROXY_CIDRS);
      const out = await applyState(db, doc, { prune: c.req.valid("query").prune, dryRun: true, defaultResolver });
      c.set("configUnchanged", true);
      return c.json(out, 200);
    })
    .openapi(postApply, async (c) => {
      const { prune, dry_run } = c.req.valid("query");
      const doc = await readDocument(c, config.TRUSTED_PROXY_CIDRS);
      const out = await applyState(db, doc, { prune, dryRun: dry_run, defaultResolver });
      if (!out.applied) {
        c.set("configUnchanged", true);
      }
      return c.json(out, 200);
    });
}
