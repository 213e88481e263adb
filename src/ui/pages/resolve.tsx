/** @jsxImportSource hono/jsx */

import { DataTable, Page } from "../layout.js";
import type { ConsoleApp } from "../types.js";
import { FieldError, invalidAttrs, Placed, ProblemNotice, problemOf } from "./problem.js";

interface Candidate {
  route_id: string;
  deployment_id: string;
  domain: string;
  path_prefix: string;
  priority: number;
  ssl_enabled: boolean;
}

interface Resolution {
  host: string;
  path: string;
  scheme: "http" | "https";
  matched: boolean;
  outcome: number;
  reason: string;
  candidates: Candidate[];
  deployment_id?: string;
  route_id?: string;
  rule?: string;
  priority?: number;
  healthy_replicas?: number;
  serves?: boolean;
  router?: string;
  entry_point?: string;
  redirect_to?: string | null;
}

const OUTCOME: Record<number, string> = {
  200: "200 OK: served",
  301: "301 Moved Permanently: redirected",
  302: "302 Found: redirected",
  400: "400 Bad Request",
  404: "404 Not Found",
  503: "503 Service Unavailable",
};

const outcomeClass = (n: number) => (n < 300 ? "ok" : n < 400 ? "warn" : "bad");
const deploymentHref = (id: string) => `/ui/deployments/${encodeURIComponent(id)}`;
const isWildcard = (domain: string) => domain.startsWith("*.");

/** Why a matching route lost to the winner, in the terms of Traefik's priorities. */
function whyLost(c: Candidate, winner: Candidate | undefined): string {
  if (!winner) {
    return "matches";
  }
  if (c.route_id === winner.route_id) {
    return "chosen: the highest priority among the matching routes";
  }
  if (c.priority === winner.priority) {
    return `same priority ${c.priority}: the other route was taken`;
  }
  if (isWildcard(c.domain) && !isWildcard(winner.domain)) {
    return `lower priority (${c.priority} < ${winner.priority}): a wildcard host ranks below an exact host`;
  }
  return `lower priority (${c.priority} < ${winner.priority}): a shorter path prefix (${c.path_prefix.length} vs ${winner.path_prefix.length} characters)`;
}

/** GET /ui/resolve?host=…&path=…&scheme=…: which route answers a request, why, and what Traefik will say. */
export function registerResolvePage(app: ConsoleApp): void {
  app.get("/resolve", async (c) => {
    const ui = c.get("console");
    const host = c.req.query("host") ?? "";
    const path = c.req.query("path") ?? "";
    const scheme = c.req.query("scheme") === "https" ? "https" : "http";
    let answer: Resolution | undefined;
    let placed = new Placed(undefined);
    if (host !== "" || c.req.query("host") !== undefined) {
      const q = new URLSearchParams({ host, path: path === "" ? "/" : path, scheme });
      const reply = await ui.api<Resolution>("GET", `/api/v1/routing/resolve?${q}`);
      placed = new Placed(problemOf(reply));
      if (!placed.problem) {
        answer = reply.body;
      }
    }
    const hostErr = placed.field("host");
    const pathErr = placed.field("path");
    const schemeErr = placed.field("scheme");
    return c.html(
      <Page title={host ? `Resolve ${host}` : "Resolve"} path={c.req.path} caller={ui.caller} csrf={ui.csrf}>
        <h1>Resolve a request</h1>
        <p class="muted">
          Which route answers a scheme, host and path, why, and the status Traefik will answer. The address of this page
          is a link to the answer.
        </p>
        <ProblemNotice placed={placed} what="The request cannot be resolved." />
        <form method="get" action="/ui/resolve" class="inline">
          <label for="resolve-host">
            Host
            <input
              id="resolve-host"
              name="host"
              value={host}
              required
              size={32}
              placeholder="shop.example.com"
              autocomplete="off"
              {...invalidAttrs("resolve-host", hostErr)}
            />
            <FieldError id="resolve-host" messages={hostErr} />
          </label>
          <label for="resolve-path">
            Path
            <input
              id="resolve-path"
              name="path"
              value={path}
              size={24}
              placeholder="/"
              autocomplete="off"
              {...invalidAttrs("resolve-path", pathErr)}
            />
            <FieldError id="resolve-path" messages={pathErr} />
          </label>
          <label for="resolve-scheme">
            Scheme
            <select id="resolve-scheme" name="scheme" {...invalidAttrs("resolve-scheme", schemeErr)}>
              <option value="http" selected={scheme === "http"}>
                http
              </option>
              <option value="https" selected={scheme === "https"}>
                https
              </option>
            </select>
            <FieldError id="resolve-scheme" messages={schemeErr} />
          </label>
          <button type="submit">Resolve</button>
        </form>
        {answer ? <Answer r={answer} /> : null}
      </Page>,
      placed.problem ? 400 : 200,
    );
  });
}

function Answer({ r }: { r: Resolution }) {
  const winner = r.candidates.find((x) => x.route_id === r.route_id);
  const target = `${r.scheme}://${r.host}${r.path}`;
  return (
    <section aria-labelledby="answer">
      <h2 id="answer">
        <code>{target}</code>
      </h2>
      <div class="cards">
        <div class="card">
          <div class={`n ${outcomeClass(r.outcome)}`} data-outcome={r.outcome}>
            {r.outcome}
          </div>
          <div class="l">expected status: {OUTCOME[r.outcome] ?? `HTTP ${r.outcome}`}</div>
        </div>
        <div class="card">
          <div class={`n ${r.matched ? "ok" : "bad"}`}>{r.matched ? "Matched" : "No match"}</div>
          <div class="l">{r.matched ? "a route claims this request" : "no route answers it"}</div>
        </div>
        {r.matched && r.deployment_id ? (
          <div class="card">
            <div class="n">
              <a href={deploymentHref(r.deployment_id)}>{r.deployment_id}</a>
            </div>
            <div class="l">
              deployment, {r.healthy_replicas ?? 0} healthy replica{r.healthy_replicas === 1 ? "" : "s"}
            </div>
          </div>
        ) : null}
      </div>
      <p class={`notice ${r.outcome < 400 ? "" : "bad"}`} role="status">
        <strong>Why:</strong> {r.reason}
      </p>
      {r.matched ? (
        <dl style="display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.75rem 0">
          <dt class="muted">Route</dt>
          <dd style="margin:0">
            {winner ? (
              <>
                <a href={deploymentHref(winner.deployment_id)}>
                  {winner.domain}
                  {winner.path_prefix === "/" ? "" : winner.path_prefix}
                </a>{" "}
                <span class="muted">({r.route_id})</span>
              </>
            ) : (
              r.route_id
            )}
          </dd>
          <dt class="muted">Rule</dt>
          <dd style="margin:0">
            <code>{r.rule}</code> (priority {r.priority})
          </dd>
          <dt class="muted">Router</dt>
          <dd style="margin:0">
            <code>{r.router}</code> on entry point <code>{r.entry_point}</code>
          </dd>
          {r.redirect_to ? (
            <>
              <dt class="muted">Redirects to</dt>
              <dd style="margin:0">
                <code>{r.redirect_to}</code>
              </dd>
            </>
          ) : null}
        </dl>
      ) : null}
      <h2>Candidates</h2>
      {r.candidates.length === 0 ? (
        <p class="muted">No route's host and path prefix match this request.</p>
      ) : (
        <DataTable
          columns={["Route", "Deployment", "Priority", "TLS", "Why"]}
          caption="Every route whose host and path prefix match, highest priority first."
        >
          {r.candidates.map((x) => (
            <tr>
              <td>
                <code>
                  {x.domain}
                  {x.path_prefix}
                </code>
              </td>
              <td>
                <a href={deploymentHref(x.deployment_id)}>{x.deployment_id}</a>
              </td>
              <td>{x.priority}</td>
              <td>{x.ssl_enabled ? "https" : "http only"}</td>
              <td class={x.route_id === r.route_id ? "ok" : ""}>{whyLost(x, winner)}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}
