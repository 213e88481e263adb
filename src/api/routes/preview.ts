import { createRoute } from "@hono/zod-openapi";
import { z } from "zod";
import type { RoutingSnapshot } from "../../db/repo/snapshot.js";
import { applyState } from "../../export/state-apply.js";
import { validateState } from "../../export/state-schema.js";
import { problemBody } from "../../lib/problem.js";
import { type PreviewStep, runPreview } from "../../provider/preview.js";
import { defaultResolverFor } from "../../provider/settings.js";
import { diffConfigs, redactConfig } from "../../render/config-diff.js";
import { previewWarnings } from "../../render/preview-warnings.js";
import { renderDynamicConfig } from "../../render/render.js";
import { toYaml } from "../../render/serialize.js";
import type { RenderResult, RenderSettings, TraefikDocument } from "../../render/types.js";
import { BODY_PROBLEMS, contracts, json, jsonBody, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { domainProblem } from "../domain-problem.js";
import { PREVIEW_OP_NAMES, type PreparedOperation, prepareOperation } from "../preview-ops.js";
import { Problem } from "../schemas.js";
import { invalid } from "../validate.js";

type ProblemJson = z.infer<typeof Problem>;

/** Operations one preview may hold: a platform-wide script is a few hundred writes. */
export const MAX_PREVIEW_OPERATIONS = 1000;

const PreviewOperation = z.looseObject({ op: z.string() }).meta({
  description:
    `One proposed write, in the shape of the real endpoint: \`op\` (${PREVIEW_OP_NAMES.join(", ")}), the ids its ` +
    "path takes (`deployment_id`, `location_id`, `domain`, `certificate_id`), `path_prefix` (remove_domain's query) " +
    "and `body` (the endpoint's JSON body).",
  example: { op: "add_domain", deployment_id: "dep_abc123", body: { domain: "www.example.com" } },
});

/** Either a list of writes, or a declarative state document whose apply is previewed as one operation. */
const PreviewBody = z
  .strictObject({
    operations: z.array(PreviewOperation).max(MAX_PREVIEW_OPERATIONS).optional(),
    state: z
      .looseObject({})
      .optional()
      .meta({ description: "A state document (GET /api/v1/state/schema): what `POST /state/apply` would do" }),
    prune: z.boolean().default(false).meta({ description: "With `state`: as `?prune=true` on /state/apply" }),
  })
  .refine((b) => (b.operations === undefined) !== (b.state === undefined), {
    message: "give either operations or state",
  });

const PreviewQuery = z.strictObject({
  format: z
    .enum(["json", "yaml"], { error: "must be json or yaml" })
    .default("json")
    .meta({ description: "`yaml`: `config` is YAML text (as GET /traefik/config?format=yaml serves it)" }),
});

const OperationAnswer = z.looseObject({
  index: z.number(),
  op: z.string(),
  status: z.enum(["accepted", "rejected"]),
  problem: Problem.optional(),
});

const PreviewView = z.object({
  operations: z.array(OperationAnswer),
  config: z
    .union([z.looseObject({}), z.string()])
    .meta({ description: 'The config as it would be served afterwards; secrets read as "(secret)"' }),
  diff: z.looseObject({ changes: z.array(z.looseObject({})), summary: z.looseObject({}) }),
  warnings: z.array(z.looseObject({ code: z.string(), message: z.string() })),
});

const preview = createRoute({
  method: "post",
  path: "/preview",
  summary: "What a list of writes would do: per-write answers, the config, its diff and warnings (nothing written)",
  security: READ,
  request: { query: PreviewQuery, body: jsonBody(PreviewBody) },
  responses: {
    200: json(PreviewView, "The preview; every write was rolled back"),
    ...problems(...BODY_PROBLEMS, 503),
  },
});

function renderSnapshot(s: RoutingSnapshot, settings: RenderSettings): RenderResult {
  const result = renderDynamicConfig({ ...s, settings });
  for (const f of s.certificateFailures) {
    result.warnings.push({ kind: "certificate", id: f.id, reason: f.reason });
  }
  return result;
}

/** The state document's apply as one operation; an invalid document is a 400 for the whole request. */
function stateOperation(raw: unknown, prune: boolean, config: Deps["config"]): PreparedOperation {
  const v = validateState(raw, { trustedProxies: config.TRUSTED_PROXY_CIDRS });
  if (!v.ok) {
    throw invalid(v.errors.map((e) => ({ location: `body.state.${e.location}`, message: e.message })));
  }
  const defaultResolver = defaultResolverFor(config);
  return {
    op: "apply_state",
    instance: "/api/v1/state/apply",
    write: async (db) => {
      const out = await applyState(db, v.doc, { prune, dryRun: false, defaultResolver });
      return { summary: out.summary, summary_line: out.summary_line, text: out.text };
    },
  };
}

/** POST /routing/preview: runs the writes in a rolled-back transaction and shows what they would serve. */
export function previewApi(deps: Deps) {
  const { handle, config, clock, certKey, cache } = deps;
  return contracts().openapi(preview, async (c) => {
    c.set("configUnchanged", true); // nothing was written: no re-render here either
    const { format } = c.req.valid("query");
    const body = c.req.valid("json");
    const prepared: PreparedOperation[] = [];
    if (body.state !== undefined) {
      prepared.push(stateOperation(body.state, body.prune, config));
    }
    for (const raw of body.operations ?? []) {
      prepared.push(await prepareOperation(raw, { config, clock, certKey }, domainProblem));
    }
    const steps: PreviewStep[] = prepared.flatMap((p) => ("write" in p ? [p.write] : []));
    const run = await runPreview(handle.db, steps, { certKey, isRefusal: (e) => domainProblem(e) !== undefined });

    const requestId = c.get("requestId");
    let next = 0;
    const operations = prepared.map((p, index) => {
      const outcome = "write" in p ? run.outcomes[next++] : undefined;
      const refused = "problem" in p ? p.problem : outcome && !outcome.ok ? domainProblem(outcome.error) : undefined;
      if (refused) {
        return {
          index,
          op: p.op,
          status: "rejected" as const,
          problem: problemBody(refused, p.instance, requestId) as ProblemJson,
        };
      }
      return { index, op: p.op, status: "accepted" as const, ...(outcome?.ok ? outcome.extra : {}) };
    });

    const settings = deps.settings;
    const before = renderSnapshot(run.before, settings);
    const after = renderSnapshot(run.after, settings);
    const served = cache.current();
    const current: TraefikDocument = served ? JSON.parse(served.json.toString("utf8")) : before.config;
    const shown = redactConfig(after.config);
    return c.json(
      {
        operations,
        config: format === "yaml" ? toYaml(shown) : shown,
        diff: diffConfigs(current, after.config),
        warnings: previewWarnings(
          { ...run.before, config: before.config, renderWarnings: before.warnings },
          { ...run.after, config: after.config, renderWarnings: after.warnings },
        ),
      },
      200,
    );
  });
}
