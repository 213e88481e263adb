/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { Csrf, Page } from "../layout.js";
import type { ConsoleApp, ConsoleEnv } from "../types.js";
import { type ConfigDiff, DiffView } from "./history.js";
import {
  defaultFieldOf,
  FieldError,
  invalidAttrs,
  Placed,
  type ProblemJson,
  ProblemNotice,
  problemOf,
  statusOf,
} from "./problem.js";

// A change previewed before it is made: the form's fields become one operation of POST /api/v1/routing/preview
// (nothing written), and Apply sends the same fields to the real endpoint.

type Kind = "domain" | "routing";

interface FieldDef {
  name: string;
  label: string;
  hint?: string;
  /** A select's options ("" = leave unchanged / default). */
  options?: readonly (readonly [string, string])[];
  placeholder?: string;
  required?: boolean;
  numeric?: boolean;
  boolean?: boolean;
}

const SSL = [
  ["", "default"],
  ["true", "on (https, HTTP redirects to it)"],
  ["false", "off (http only)"],
] as const;

const KINDS: Record<Kind, { label: string; op: string; intro: string; fields: FieldDef[] }> = {
  domain: {
    label: "Add a domain",
    op: "add_domain",
    intro: "Another host (and path) routed to a deployment: POST /api/v1/deployments/{id}/domains.",
    fields: [
      { name: "deployment_id", label: "Deployment id", required: true, placeholder: "dep_shop" },
      { name: "domain", label: "Domain", required: true, placeholder: "www.example.com" },
      { name: "path_prefix", label: "Path prefix", placeholder: "/" },
      { name: "target_port", label: "Target port", numeric: true, placeholder: "as primary" },
      { name: "ssl_enabled", label: "TLS", options: SSL, boolean: true },
    ],
  },
  routing: {
    label: "Edit routing of a deployment",
    op: "put_routing",
    intro:
      "The deployment's primary route: PUT /api/v1/deployments/{id}/routing. Empty fields keep their current value.",
    fields: [
      { name: "deployment_id", label: "Deployment id", required: true, placeholder: "dep_shop" },
      { name: "domain", label: "Domain", placeholder: "unchanged" },
      { name: "path_prefix", label: "Path prefix", placeholder: "unchanged" },
      { name: "target_port", label: "Target port", numeric: true, placeholder: "unchanged" },
      {
        name: "protocol",
        label: "Protocol",
        options: [
          ["", "unchanged"],
          ["http", "http"],
          ["https", "https"],
          ["h2c", "h2c (gRPC without TLS)"],
        ],
      },
      {
        name: "load_balancer_algo",
        label: "Load balancing",
        options: [
          ["", "unchanged"],
          ["round-robin", "round-robin"],
          ["least-conn", "least-conn (lowest CPU)"],
          ["ip-hash", "ip-hash"],
        ],
      },
      { name: "ssl_enabled", label: "TLS", options: [["", "unchanged"], ...SSL.slice(1)], boolean: true },
    ],
  },
};

type Values = Record<string, string>;

interface Operation {
  index: number;
  op: string;
  status: "accepted" | "rejected";
  problem?: ProblemJson;
  [extra: string]: unknown;
}

interface Preview {
  operations: Operation[];
  diff: ConfigDiff;
  warnings: { code: string; message: string }[];
}

const kindOf = (v: unknown): Kind => (v === "routing" ? "routing" : "domain");

/** `path.id` is the deployment id the form asks for; `body.domain` is its `domain` field. */
const fieldOf = (location: string) => (location === "path.id" ? "deployment_id" : defaultFieldOf(location));

/** The form's values: only the kind's fields, as typed. */
function valuesOf(kind: Kind, form: Record<string, unknown>): Values {
  const out: Values = {};
  for (const f of KINDS[kind].fields) {
    const v = form[f.name];
    out[f.name] = typeof v === "string" ? v.trim() : "";
  }
  return out;
}

/** The endpoint's JSON body: empty fields left out, a port as a number (as typed when it is not one: the API says why). */
function bodyOf(kind: Kind, values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of KINDS[kind].fields) {
    const v = values[f.name] ?? "";
    if (f.name === "deployment_id" || v === "") {
      continue;
    }
    body[f.name] = f.numeric && /^\d{1,9}$/.test(v) ? Number(v) : f.boolean ? v === "true" : v;
  }
  return body;
}

interface Outcome {
  placed?: Placed;
  preview?: Preview;
}

/** GET/POST /ui/preview and POST /ui/preview/apply. */
export function registerPreviewPages(app: ConsoleApp): void {
  app.get("/preview", (c) => {
    const kind = kindOf(c.req.query("kind"));
    const values: Values = { deployment_id: c.req.query("deployment") ?? "" };
    return renderPreview(c, kind, values, {});
  });

  app.post("/preview", async (c) => {
    const ui = c.get("console");
    const form = await c.req.parseBody();
    const kind = kindOf(form.kind);
    const values = valuesOf(kind, form);
    const op = { op: KINDS[kind].op, deployment_id: values.deployment_id ?? "", body: bodyOf(kind, values) };
    const reply = await ui.api<Preview>("POST", "/api/v1/routing/preview", { operations: [op] });
    const problem = problemOf(reply);
    if (problem) {
      return renderPreview(c, kind, values, { placed: new Placed(problem, fieldOf) }, statusOf(problem));
    }
    const answer = reply.body.operations[0];
    if (answer?.status === "rejected") {
      return renderPreview(c, kind, values, { placed: new Placed(answer.problem ?? { detail: "Refused." }, fieldOf) });
    }
    return renderPreview(c, kind, values, { preview: reply.body });
  });

  app.post("/preview/apply", async (c) => {
    const ui = c.get("console");
    const form = await c.req.parseBody();
    const kind = kindOf(form.kind);
    const values = valuesOf(kind, form);
    const id = encodeURIComponent(values.deployment_id ?? "");
    const reply =
      kind === "routing"
        ? await ui.api("PUT", `/api/v1/deployments/${id}/routing`, bodyOf(kind, values))
        : await ui.api("POST", `/api/v1/deployments/${id}/domains`, bodyOf(kind, values));
    const problem = problemOf(reply);
    if (problem) {
      return renderPreview(c, kind, values, { placed: new Placed(problem, fieldOf) }, statusOf(problem));
    }
    return c.redirect(`/ui/deployments/${id}`, 303);
  });
}

function renderPreview(
  c: Context<ConsoleEnv>,
  kind: Kind,
  values: Values,
  out: Outcome,
  status: ContentfulStatusCode = 200,
) {
  const ui = c.get("console");
  const def = KINDS[kind];
  const placed = out.placed ?? new Placed(undefined, fieldOf);
  const errs = Object.fromEntries(def.fields.map((f) => [f.name, placed.field(f.name)]));
  const deploymentId = values.deployment_id ?? "";
  return c.html(
    <Page title="Preview a change" path="/ui/preview" caller={ui.caller} csrf={ui.csrf}>
      <h1>Preview a change</h1>
      <p class="muted">
        See what a change does to the config Traefik is served, and what to watch out for, before making it. Nothing is
        written until you apply it.
      </p>
      <nav aria-label="Kind of change" class="pager">
        {(Object.keys(KINDS) as Kind[]).map((k) => (
          <a
            href={`/ui/preview?kind=${k}${deploymentId ? `&deployment=${encodeURIComponent(deploymentId)}` : ""}`}
            aria-current={k === kind ? "page" : undefined}
            style={k === kind ? "font-weight:700" : undefined}
          >
            {KINDS[k].label}
          </a>
        ))}
      </nav>
      <h2>{def.label}</h2>
      <p class="muted">{def.intro}</p>
      <ProblemNotice placed={placed} what="The API refuses this change." />
      <form method="post" action="/ui/preview" class="inline">
        <Csrf token={ui.csrf} />
        <input type="hidden" name="kind" value={kind} />
        {def.fields.map((f) => {
          const id = `f-${f.name}`;
          const messages = errs[f.name] ?? [];
          return (
            <label for={id}>
              {f.label}
              {f.options ? (
                <select id={id} name={f.name} {...invalidAttrs(id, messages)}>
                  {f.options.map(([v, text]) => (
                    <option value={v} selected={values[f.name] === v}>
                      {text}
                    </option>
                  ))}
                </select>
              ) : (
                <input
                  id={id}
                  name={f.name}
                  value={values[f.name] ?? ""}
                  required={f.required}
                  placeholder={f.placeholder}
                  inputmode={f.numeric ? "numeric" : undefined}
                  autocomplete="off"
                  size={f.numeric ? 8 : 22}
                  {...invalidAttrs(id, messages)}
                />
              )}
              <FieldError id={id} messages={messages} />
            </label>
          );
        })}
        <button type="submit">Preview</button>
      </form>
      {out.preview ? (
        <Result preview={out.preview} kind={kind} values={values} canWrite={ui.can("write")} csrf={ui.csrf} />
      ) : null}
    </Page>,
    status,
  );
}

function Result(props: { preview: Preview; kind: Kind; values: Values; canWrite: boolean; csrf: string }) {
  const { preview, kind, values, canWrite, csrf } = props;
  const op = preview.operations[0];
  const verification = (op?.verification as { status?: string } | undefined)?.status;
  const pending = verification !== undefined && verification !== "verified";
  return (
    <section aria-labelledby="result">
      <h2 id="result">What it would change</h2>
      {pending ? (
        <p class="notice warn" role="status">
          The domain's ownership is not proven yet: it is routed only once verified, so the config does not change yet.
        </p>
      ) : null}
      <h3 style="font-size:1rem">Warnings</h3>
      {preview.warnings.length === 0 ? (
        <p class="ok">No warning: no route stops answering, no host moves to another deployment.</p>
      ) : (
        <ul style="padding:0">
          {preview.warnings.map((w) => (
            <li class="notice warn" style="list-style:none">
              <strong>{w.code}</strong>: {w.message}
            </li>
          ))}
        </ul>
      )}
      <h3 style="font-size:1rem">Config diff (against what is served now)</h3>
      <DiffView diff={preview.diff} />
      {canWrite ? (
        <form method="post" action="/ui/preview/apply">
          <Csrf token={csrf} />
          <input type="hidden" name="kind" value={kind} />
          {Object.entries(values).map(([name, value]) => (
            <input type="hidden" name={name} value={value} />
          ))}
          <button type="submit">Apply: {KINDS[kind].label.toLowerCase()}</button>{" "}
          <span class="muted">
            goes to the real endpoint, then to deployment{" "}
            <a href={`/ui/deployments/${encodeURIComponent(values.deployment_id ?? "")}`}>{values.deployment_id}</a>
          </span>
        </form>
      ) : (
        <p class="muted">Applying a change needs a token with the write scope.</p>
      )}
    </section>
  );
}
