/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import { redactConfig } from "../../render/config-diff.js";
import { deploymentSlug, routeName } from "../../render/names.js";
import type { HttpConfig, Router, TraefikDocument } from "../../render/types.js";
import { DataTable, Health, Page } from "../layout.js";
import type { ConsoleApp, ConsoleEnv } from "../types.js";
import { newestEvents } from "./events.js";
import { Placed, ProblemNotice, problemOf } from "./problem.js";

// Deployments: a searchable, keyset-paged list (the API's ?q= and ?after=), and one deployment with its routes,
// middlewares, health checks, replicas (live health through the events stream) and what is rendered for it.

const PAGE_SIZE = 50;
const HISTORY = 10;

interface DeploymentJson {
  id: string;
  name: string;
  created_at: string;
  updated_at: string;
}

interface RouteJson {
  id: string;
  domain: string;
  path_prefix: string;
  target_port: number;
  protocol: string;
  load_balancer_algo: string;
  ssl_enabled: boolean;
  ssl_cert_resolver: string;
  tls_include_apex: boolean;
  is_primary: boolean;
  verification: { status: "verified"; verified_at: string | null } | { status: "pending"; expires_at: string };
}

interface LocationJson {
  id: string;
  node_id: string;
  node_hostname: string;
  address: string;
  port: number | null;
  status: string;
  health_status: string;
  track: string;
  region: string | null;
  draining?: boolean;
  drained?: boolean;
  drain_until: string | null;
  cpu_usage: number | null;
  last_check_at: string | null;
  last_error: string | null;
}

interface HealthEventJson {
  location_id: string;
  from: string;
  to: string;
  at: string;
  reason: string;
  source: string;
}

interface HealthCheckJson {
  path: string;
  interval_seconds: number;
  timeout_seconds: number;
  expected_status: string;
  mode: string | null;
  tls: { server_name: string | null; ca_pem: string | null; insecure_skip_verify: boolean };
  overrides: string[];
}

type MiddlewaresJson = Record<string, unknown> & { chain_order: string[] };

interface ServedConfigJson {
  revision: number;
  rendered_at: string;
  config: { http?: Partial<HttpConfig> };
}

export const deploymentHref = (id: string) => `/ui/deployments/${encodeURIComponent(id)}`;

/** `2026-06-01T12:00:03.123Z` → `2026-06-01 12:00:03 UTC`. */
export function when(iso: string | null | undefined): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : "never";
}

function Time({ iso }: { iso: string | null | undefined }) {
  return iso ? <time datetime={iso}>{when(iso)}</time> : <span class="muted">never</span>;
}

type RenderedPart = Pick<HttpConfig, "routers" | "services" | "middlewares" | "serversTransports">;

/**
 * The part of the served config that belongs to one deployment. Every name rendered for it is its slug (its one
 * service) or starts with `<deployment slug>--` (render/names.ts: routers `<deployment>--<route>` and their
 * `--to-https` twins, split and geo services, deployment-wide middlewares and transports `<deployment>--…`); slugs
 * hold no `--`, so no other deployment's names share the prefix (`dep-a--` vs `dep-a-b--`). Shared middlewares its
 * routers use (the https redirect) come along.
 */
export function renderedFor(http: Partial<HttpConfig> | undefined, deploymentId: string): Partial<RenderedPart> {
  const slug = deploymentSlug(deploymentId);
  const own = `${slug}--`;
  const mine = (name: string) => name === slug || name.startsWith(own);
  const pick = <T,>(map: Record<string, T> | undefined, keep: (name: string) => boolean) =>
    Object.fromEntries(Object.entries(map ?? {}).filter(([name]) => keep(name)));
  const routers = pick(http?.routers, mine);
  const used = new Set(Object.values(routers).flatMap((r) => r.middlewares ?? []));
  const services = new Set(Object.values(routers).map((r) => r.service));
  const out: Partial<RenderedPart> = {
    routers,
    services: pick(http?.services, (n) => mine(n) || services.has(n)),
    middlewares: pick(http?.middlewares, (n) => mine(n) || used.has(n)),
    serversTransports: pick(http?.serversTransports, mine),
  };
  for (const key of Object.keys(out) as (keyof RenderedPart)[]) {
    if (Object.keys(out[key] ?? {}).length === 0) {
      delete out[key];
    }
  }
  return out;
}

/** GET /ui/deployments (search, pages) and /ui/deployments/:id. */
export function registerDeploymentPages(app: ConsoleApp): void {
  app.get("/deployments", listPage);
  app.get("/deployments/:id", deploymentPage);
}

async function listPage(c: Context<ConsoleEnv>) {
  const ui = c.get("console");
  const q = (c.req.query("q") ?? "").trim();
  const after = c.req.query("after") ?? "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (q !== "") {
    query.set("q", q);
  }
  if (after !== "") {
    query.set("after", after);
  }
  const reply = await ui.api<{ items: DeploymentJson[]; next_cursor: string | null }>(
    "GET",
    `/api/v1/deployments?${query}`,
  );
  const placed = new Placed(problemOf(reply));
  const items = placed.problem ? [] : reply.body.items;
  const next = placed.problem ? null : reply.body.next_cursor;
  const link = (cursor: string | null) => {
    const p = new URLSearchParams();
    if (q !== "") {
      p.set("q", q);
    }
    if (cursor) {
      p.set("after", cursor);
    }
    const s = p.toString();
    return s === "" ? "/ui/deployments" : `/ui/deployments?${s}`;
  };
  return c.html(
    <Page title="Deployments" path={c.req.path} caller={ui.caller} csrf={ui.csrf}>
      <h1>Deployments</h1>
      <search>
        <form method="get" action="/ui/deployments" class="inline">
          <label>
            Search id or name
            <input type="search" name="q" value={q} maxlength={200} size={32} placeholder="e.g. shop" />
          </label>
          <button type="submit">Search</button>
          {q !== "" ? (
            <a href="/ui/deployments" class="muted">
              Clear
            </a>
          ) : null}
        </form>
      </search>
      <ProblemNotice placed={placed} what="The search was refused." />
      {items.length === 0 && !placed.problem ? (
        <p class="muted">
          {q !== "" ? `No deployment's id or name contains “${q}”${after ? " after this point" : ""}.` : null}
          {q === "" ? (after ? "No more deployments." : "No deployments yet.") : null}
        </p>
      ) : null}
      {items.length > 0 ? (
        <DataTable
          columns={["Id", "Name", "Created"]}
          caption={
            <>
              {q !== "" ? `Deployments whose id or name contains “${q}”` : "All deployments"}, by id
              {after ? `, after ${after}` : ""}
            </>
          }
        >
          {items.map((d) => (
            <tr>
              <td>
                <a href={deploymentHref(d.id)}>
                  <code>{d.id}</code>
                </a>
              </td>
              <td>{d.name}</td>
              <td>
                <Time iso={d.created_at} />
              </td>
            </tr>
          ))}
        </DataTable>
      ) : null}
      <nav class="pager" aria-label="Pages">
        {after ? <a href={link(null)}>First page</a> : null}
        {next ? (
          <a href={link(next)} rel="next">
            Next page
          </a>
        ) : null}
      </nav>
    </Page>,
  );
}

function NotFoundPage({ c, id }: { c: Context<ConsoleEnv>; id: string }) {
  const ui = c.get("console");
  return (
    <Page title="Deployment not found" path={c.req.path} caller={ui.caller} csrf={ui.csrf}>
      <h1>Deployment not found</h1>
      <p class="notice bad" role="alert">
        There is no deployment <code>{id}</code> (or this token may not see it).
      </p>
      <p>
        <a href="/ui/deployments">Back to the deployments</a>
      </p>
    </Page>
  );
}

async function deploymentPage(c: Context<ConsoleEnv>) {
  const ui = c.get("console");
  const id = c.req.param("id") ?? "";
  const base = `/api/v1/deployments/${encodeURIComponent(id)}`;
  const dep = await ui.api<DeploymentJson>("GET", base);
  if (dep.status === 404 || dep.status === 400) {
    return c.html(<NotFoundPage c={c} id={id} />, 404);
  }
  // The newest event before anything is read: the page's stream replays what happens from here on, so a replica
  // that changes while the page is rendered still shows.
  const mark = (await newestEvents(ui, {}, 1)).items[0]?.id ?? 0;
  const [routing, middlewares, health, locations, served] = await Promise.all([
    ui.api<{ domains: RouteJson[] }>("GET", `${base}/routing`),
    ui.api<MiddlewaresJson>("GET", `${base}/middlewares`),
    ui.api<HealthCheckJson>("GET", `${base}/health-check`),
    ui.api<{ items: LocationJson[] }>("GET", `${base}/locations`),
    ui.api<ServedConfigJson>("GET", "/api/v1/routing/config"),
  ]);
  const replicas = locations.status === 200 ? locations.body.items : [];
  const histories = await Promise.all(
    replicas.map(async (l) => {
      const r = await ui.api<{ items: HealthEventJson[] }>(
        "GET",
        `${base}/locations/${encodeURIComponent(l.id)}/events?limit=${HISTORY}`,
      );
      return r.status === 200 ? r.body.items : [];
    }),
  );
  const routes = routing.status === 200 ? routing.body.domains : [];
  const rendered = served.status === 200 ? renderedFor(served.body.config.http, id) : undefined;
  // Secrets never reach the page: whatever the token's scopes, the shown part is redacted like a read token's.
  const shown = rendered ? (redactConfig({ http: rendered } as TraefikDocument) as { http?: unknown }) : undefined;
  const routerOf = (r: RouteJson): Router | undefined => rendered?.routers?.[routeName({ id: r.id, deploymentId: id })];
  const d = dep.body;
  const stream = `/ui/events/stream?${new URLSearchParams({
    deployment_id: id,
    type: "replica.health_changed",
    last_event_id: String(mark),
  })}`;
  return c.html(
    <Page title={d.name} path={c.req.path} caller={ui.caller} csrf={ui.csrf} script={LIVE_HEALTH_SCRIPT}>
      <p class="muted" style="margin:0">
        <a href="/ui/deployments">Deployments</a> / <code>{d.id}</code>
      </p>
      <h1>{d.name}</h1>
      <p class="muted">
        Created <Time iso={d.created_at} />, updated <Time iso={d.updated_at} />.{" "}
        <a href={`/ui/events?deployment_id=${encodeURIComponent(d.id)}`}>Events of this deployment</a>
      </p>

      <h2 id="routes">Routes</h2>
      {routes.length === 0 ? (
        <p class="muted">No routes: this deployment is not reachable through Traefik.</p>
      ) : (
        <DataTable
          columns={["Domain", "Path", "Target", "TLS", "Ownership", "Rule and priority (as rendered)", "Middlewares"]}
        >
          {routes.map((r) => {
            const router = routerOf(r);
            return (
              <tr data-route-id={r.id}>
                <td>
                  <a
                    href={`/ui/resolve?${new URLSearchParams({ host: r.domain.replace(/^\*\./, "x."), path: r.path_prefix, scheme: r.ssl_enabled ? "https" : "http" })}`}
                  >
                    {r.domain}
                  </a>
                  {r.is_primary ? <span class="muted"> (primary)</span> : null}
                </td>
                <td>
                  <code>{r.path_prefix}</code>
                </td>
                <td>
                  {r.protocol} :{r.target_port}
                  <br />
                  <span class="muted">{r.load_balancer_algo}</span>
                </td>
                <td>
                  {r.ssl_enabled ? <span class="ok">on</span> : <span class="muted">off</span>}
                  {r.ssl_enabled ? (
                    <span class="muted">
                      {" "}
                      ({r.ssl_cert_resolver}
                      {r.tls_include_apex ? ", with apex" : ""})
                    </span>
                  ) : null}
                </td>
                <td>
                  {r.verification.status === "verified" ? (
                    <span class="ok">verified</span>
                  ) : (
                    <span class="warn">
                      pending until <Time iso={r.verification.expires_at} />
                    </span>
                  )}
                </td>
                <td>
                  {router ? (
                    <>
                      <code>{router.rule}</code>
                      <br />
                      <span class="muted">
                        priority {router.priority} on {router.entryPoints.join(", ")}
                      </span>
                    </>
                  ) : (
                    <span class="warn">not rendered</span>
                  )}
                </td>
                <td>
                  {router?.middlewares && router.middlewares.length > 0 ? (
                    router.middlewares.map((m) => (
                      <>
                        <code>{m}</code>{" "}
                      </>
                    ))
                  ) : (
                    <span class="muted">none</span>
                  )}
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}

      <h2 id="middlewares">Middlewares</h2>
      {middlewares.status === 200 ? (
        <MiddlewareSummary m={middlewares.body} />
      ) : (
        <p class="muted">Not available ({middlewares.status}).</p>
      )}

      <h2 id="health-check">Health checks</h2>
      {health.status === 200 ? (
        <HealthCheckSummary h={health.body} />
      ) : (
        <p class="muted">Not available ({health.status}).</p>
      )}

      <h2 id="replicas">Replicas</h2>
      <p class="muted" id="live" data-stream={stream} aria-live="polite">
        Health updates live while this page is open (needs JavaScript; reload otherwise).
      </p>
      {replicas.length === 0 ? (
        <p class="muted">No replicas registered.</p>
      ) : (
        <DataTable
          columns={[
            "Replica",
            "Address",
            "Node",
            "Track / region",
            "Status",
            "Health",
            "CPU",
            "Last check",
            "Last error",
            "Transitions",
          ]}
        >
          {replicas.map((l, i) => (
            <tr data-location-id={l.id}>
              <td>
                <code>{l.id}</code>
              </td>
              <td>
                <code>
                  {l.address}
                  {l.port === null ? "" : `:${l.port}`}
                </code>
              </td>
              <td>
                {l.node_hostname || l.node_id}
                {l.node_hostname && l.node_id && l.node_hostname !== l.node_id ? (
                  <span class="muted"> ({l.node_id})</span>
                ) : null}
              </td>
              <td>
                {l.track}
                {l.region ? <span class="muted"> · {l.region}</span> : null}
              </td>
              <td>
                {l.status}
                {l.draining ? (
                  <span class="muted">
                    {" "}
                    · draining until <Time iso={l.drain_until} />
                  </span>
                ) : l.drained ? (
                  <span class="muted"> · drained</span>
                ) : null}
              </td>
              <td data-health="">
                <Health status={l.health_status} />
              </td>
              <td>{l.cpu_usage === null ? <span class="muted">—</span> : `${l.cpu_usage.toFixed(1)} %`}</td>
              <td data-last-check="">
                <Time iso={l.last_check_at} />
              </td>
              <td data-last-error="">{l.last_error ? <code>{l.last_error}</code> : <span class="muted">—</span>}</td>
              <td>
                <details>
                  <summary>
                    <span data-count="">{histories[i]?.length ?? 0}</span> recent
                  </summary>
                  <ol data-history="" reversed style="margin:.25rem 0;padding-left:1.5rem">
                    {(histories[i] ?? []).map((e) => (
                      <li>
                        <Time iso={e.at} />: {e.from} → <span class={e.to}>{e.to}</span>{" "}
                        <span class="muted">
                          ({e.source}: {e.reason})
                        </span>
                      </li>
                    ))}
                  </ol>
                </details>
              </td>
            </tr>
          ))}
        </DataTable>
      )}

      <h2 id="rendered">Rendered for Traefik</h2>
      {served.status === 200 && shown ? (
        <>
          <p class="muted">
            The routers, services and middlewares of this deployment in the served config (revision{" "}
            {served.body.revision}, rendered <Time iso={served.body.rendered_at} />
            ), secrets redacted.
          </p>
          {Object.keys(rendered ?? {}).length === 0 ? (
            <p class="muted">Nothing is rendered for this deployment.</p>
          ) : (
            <pre data-rendered="">{JSON.stringify(shown.http, null, 2)}</pre>
          )}
        </>
      ) : (
        <p class="notice warn">The served config is not available ({served.status}).</p>
      )}
    </Page>,
  );
}

function MiddlewareSummary({ m }: { m: MiddlewaresJson }) {
  type Any = Record<string, unknown>;
  const rows: [string, string][] = [];
  const get = (k: string) => m[k] as Any | undefined;
  if (m.redirect_www) {
    rows.push(["redirect-www", String(m.redirect_www)]);
  }
  const ip = get("ip_allow_list");
  if (ip) {
    const depth = ip.ip_depth ? `, X-Forwarded-For depth ${String(ip.ip_depth)}` : "";
    rows.push(["ip-allow-list", `${(ip.source_range as string[]).join(", ")}${depth}`]);
  }
  const rl = get("rate_limit");
  if (rl) {
    const per = rl.request_header ? ` per ${String(rl.request_header)} header` : " per client IP";
    rows.push([
      "rate-limit",
      `${String(rl.average)} requests / ${String(rl.period_seconds ?? 1)} s, burst ${String(rl.burst ?? 1)}${per}`,
    ]);
  }
  const auth = get("basic_auth");
  if (auth) {
    // The API shows user names only; the page never shows more.
    const users = (auth.users as string[]).map((u) => u.split(":")[0]).join(", ");
    rows.push(["basic-auth", `users: ${users}${auth.realm ? `; realm “${String(auth.realm)}”` : ""}`]);
  }
  const h = get("headers");
  if (h) {
    const names = (x: unknown) => Object.keys((x as Any | undefined) ?? {}).join(", ") || "none";
    rows.push([
      "headers",
      `request: ${names(h.request)}; response: ${names(h.response)}${h.security_preset ? "; security preset" : ""}`,
    ]);
  }
  const gz = get("compress");
  if (gz && gz.enabled !== false) {
    rows.push(["compress", gz.encodings ? (gz.encodings as string[]).join(", ") : "default encodings"]);
  }
  if (m.strip_prefix) {
    rows.push(["strip-prefix", "the route's path prefix is removed before forwarding"]);
  }
  if (rows.length === 0) {
    return <p class="muted">None configured.</p>;
  }
  return (
    <DataTable columns={["Middleware", "Settings (header values and passwords not shown)"]}>
      {rows.map(([name, text]) => (
        <tr>
          <td>
            <code>{name}</code>
          </td>
          <td>{text}</td>
        </tr>
      ))}
    </DataTable>
  );
}

function HealthCheckSummary({ h }: { h: HealthCheckJson }) {
  const mark = (field: string) => (h.overrides.includes(field) ? <span class="muted"> (set here)</span> : null);
  return (
    <div class="cards">
      <div class="card">
        <div class="l">path{mark("path")}</div>
        <code>{h.path}</code>
      </div>
      <div class="card">
        <div class="l">every{mark("interval_seconds")}</div>
        {h.interval_seconds} s, timeout {h.timeout_seconds} s{mark("timeout_seconds")}
      </div>
      <div class="card">
        <div class="l">expected status{mark("expected_status")}</div>
        <code>{h.expected_status}</code>
      </div>
      <div class="card">
        <div class="l">mode{mark("mode")}</div>
        {h.mode ?? "grpc for h2c, else http"}
      </div>
      <div class="card">
        <div class="l">backend TLS{mark("tls")}</div>
        {h.tls.insecure_skip_verify ? (
          <span class="bad">verification off</span>
        ) : (
          <>
            {h.tls.ca_pem ? "own CA bundle" : "system roots"}
            {h.tls.server_name ? `, name ${h.tls.server_name}` : ""}
          </>
        )}
      </div>
    </div>
  );
}

/**
 * The replicas' live part: the events stream (through /ui/events/stream) updates a row's health pill, last check
 * and history on each replica.health_changed. Data arrives only through textContent, never as HTML.
 */
const LIVE_HEALTH_SCRIPT = `
const live = document.getElementById("live");
const KNOWN = ["unknown", "healthy", "unhealthy"];
if (live && "EventSource" in window) {
  const es = new EventSource(live.dataset.stream);
  es.onopen = () => { live.textContent = "Live: health updates appear here as they happen."; live.dataset.state = "open"; };
  es.onerror = () => { live.textContent = "Live updates interrupted: reconnecting…"; live.dataset.state = "retry"; };
  es.addEventListener("replica.health_changed", (m) => {
    const e = JSON.parse(m.data);
    const to = KNOWN.includes(e.data && e.data.to) ? e.data.to : "unknown";
    for (const row of document.querySelectorAll("tr[data-location-id]")) {
      if (row.dataset.locationId !== e.subject) continue;
      const pill = document.createElement("span");
      pill.className = "pill " + to;
      pill.textContent = to;
      row.querySelector("[data-health]").replaceChildren(pill);
      const at = document.createElement("time");
      at.dateTime = e.at;
      at.textContent = e.at.slice(0, 10) + " " + e.at.slice(11, 19) + " UTC";
      row.querySelector("[data-last-check]").replaceChildren(at);
      if (to === "unhealthy" && e.data.reason) {
        const code = document.createElement("code");
        code.textContent = String(e.data.reason);
        row.querySelector("[data-last-error]").replaceChildren(code);
      }
      const li = document.createElement("li");
      const word = document.createElement("span");
      word.className = to;
      word.textContent = to;
      const why = document.createElement("span");
      why.className = "muted";
      why.textContent = " (" + (e.data.source || "") + ": " + (e.data.reason || "") + ")";
      li.append(at.cloneNode(true), ": " + (e.data.from || "?") + " → ", word, why);
      const list = row.querySelector("[data-history]");
      list.prepend(li);
      const count = row.querySelector("[data-count]");
      count.textContent = String(list.children.length);
    }
  });
}
`;
