/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { Csrf, DataTable, Page } from "../layout.js";
import type { ConsoleApp, ConsoleEnv } from "../types.js";
import { FieldError, invalidAttrs, Placed, ProblemNotice, problemOf, statusOf } from "./problem.js";

interface Summary {
  added?: number;
  removed?: number;
  changed?: number;
}

interface Revision {
  revision: number;
  hash: string;
  created_at: string;
  cause: string;
  actor: string | null;
  detail: string | null;
  summary: Summary;
  bytes: number;
  held: boolean;
  confirmed_at: string | null;
  confirmed_by: string | null;
  first_served_at: string | null;
  last_served_at: string | null;
  served_now: boolean;
}

interface Freeze {
  frozen: boolean;
  revision?: number;
  reason?: string;
  actor?: string | null;
  frozen_at?: string;
  waiting_revisions?: number;
  latest_revision?: number | null;
}

export interface FieldChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

export interface EntryChange {
  section: string;
  name: string;
  change: "added" | "removed" | "changed";
  fields?: FieldChange[];
}

export interface ConfigDiff {
  changes: EntryChange[];
  summary: Summary & { byKind?: Record<string, { added: string[]; removed: string[]; changed: string[] }> };
}

const PAGE_SIZE = 25;
const when = (iso: string) => iso.replace("T", " ").replace(/\.\d+Z$/, "Z");

/** Messages after a write, chosen by a word in the query string (never text from the query itself). */
const FLASH: Record<string, (n: number | undefined) => string> = {
  frozen: (n) => `Frozen on revision ${n}: every instance serves it until the freeze is released.`,
  released: () => "Freeze released: every instance serves the current state again.",
  confirmed: (n) => `Confirmed revision ${n}: every instance serves it.`,
};

interface HistoryState {
  /** A refused freeze: its revision, the reason typed, and the API's problem. */
  freeze?: { revision: string; reason: string; placed: Placed };
  problem?: Placed;
}

/** GET /ui/history, /ui/history/:n and the admin writes on them; also the preview pages (src/ui/pages/preview.tsx). */
export function registerHistoryPages(app: ConsoleApp): void {
  app.get("/history", (c) => renderHistory(c, {}));

  app.post("/history/freeze", async (c) => {
    const ui = c.get("console");
    const form = await c.req.parseBody();
    const revision = typeof form.revision === "string" ? form.revision : "";
    const reason = typeof form.reason === "string" ? form.reason : "";
    const n = /^\d+$/.test(revision) ? Number(revision) : revision;
    const reply = await ui.api("POST", "/api/v1/routing/freeze", { revision: n, reason });
    const problem = problemOf(reply);
    if (!problem) {
      return c.redirect(`/ui/history?done=frozen&n=${encodeURIComponent(revision)}`, 303);
    }
    return renderHistory(c, { freeze: { revision, reason, placed: new Placed(problem) } }, statusOf(problem));
  });

  app.post("/history/release", async (c) => {
    const reply = await c.get("console").api("DELETE", "/api/v1/routing/freeze");
    const problem = problemOf(reply);
    return problem
      ? renderHistory(c, { problem: new Placed(problem) }, statusOf(problem))
      : c.redirect("/ui/history?done=released", 303);
  });

  app.post("/history/:n/confirm", async (c) => {
    const n = c.req.param("n");
    const reply = await c.get("console").api("POST", `/api/v1/routing/revisions/${encodeURIComponent(n)}/confirm`);
    const problem = problemOf(reply);
    return problem
      ? renderHistory(c, { problem: new Placed(problem) }, statusOf(problem))
      : c.redirect(`/ui/history?done=confirmed&n=${encodeURIComponent(n)}`, 303);
  });

  app.get("/history/:n", async (c) => {
    const ui = c.get("console");
    const raw = c.req.param("n");
    const n = /^\d{1,15}$/.test(raw) ? Number(raw) : Number.NaN;
    const meta = Number.isSafeInteger(n)
      ? await ui.api<{ items: Revision[] }>("GET", `/api/v1/routing/revisions?limit=2&before=${n + 2}`)
      : undefined;
    // This revision and, when there is one, the next (for the link to it).
    const rev = meta?.body?.items?.find((r) => r.revision === n);
    const hasNext = meta?.body?.items?.some((r) => r.revision === n + 1) ?? false;
    const against = n - 1;
    const reply =
      rev && against >= 1
        ? await ui.api<ConfigDiff & { from: number; to: number }>(
            "GET",
            `/api/v1/routing/revisions/${against}/diff/${n}`,
          )
        : undefined;
    const problem = reply ? problemOf(reply) : undefined;
    const title = `Revision ${raw}`;
    return c.html(
      <Page title={title} path={c.req.path} caller={ui.caller} csrf={ui.csrf}>
        <p>
          <a href="/ui/history">← History</a>
        </p>
        <h1>{title}</h1>
        {rev ? (
          <>
            <RevisionFacts r={rev} />
            <nav aria-label="Revisions" class="pager">
              {n > 1 ? <a href={`/ui/history/${n - 1}`}>← Revision {n - 1}</a> : null}
              {hasNext ? (
                <a href={`/ui/history/${n + 1}`}>Revision {n + 1} →</a>
              ) : (
                <span class="muted">the newest</span>
              )}
            </nav>
            <h2>
              Changes from revision {against} to {n}
            </h2>
            {against < 1 ? (
              <p class="muted">The first revision: there is nothing before it to compare with.</p>
            ) : problem ? (
              <ProblemNotice placed={new Placed(problem)} what="No diff." />
            ) : reply ? (
              <DiffView diff={reply.body} />
            ) : null}
          </>
        ) : (
          <p class="notice bad" role="alert">
            No revision {raw}: it was never recorded, or it was pruned. <a href="/ui/history">See the list</a>.
          </p>
        )}
      </Page>,
      rev ? 200 : 404,
    );
  });
}

async function renderHistory(c: Context<ConsoleEnv>, state: HistoryState, status: ContentfulStatusCode = 200) {
  const ui = c.get("console");
  const before = c.req.query("before");
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) {
    q.set("before", before);
  }
  const [freezeReply, listReply] = await Promise.all([
    ui.api<Freeze>("GET", "/api/v1/routing/freeze"),
    ui.api<{ items: Revision[]; next_before: number | null }>("GET", `/api/v1/routing/revisions?${q}`),
  ]);
  const listProblem = problemOf(listReply);
  const items = listProblem ? [] : listReply.body.items;
  const freeze = problemOf(freezeReply) ? undefined : freezeReply.body;
  const admin = ui.can("admin");
  const done = c.req.query("done");
  const doneN = Number(c.req.query("n"));
  const flash =
    done && Object.hasOwn(FLASH, done) ? FLASH[done]?.(Number.isSafeInteger(doneN) ? doneN : undefined) : "";
  return c.html(
    <Page title="History" path="/ui/history" caller={ui.caller} csrf={ui.csrf}>
      <h1>Config history</h1>
      {flash ? (
        <p class="notice" role="status">
          {flash}
        </p>
      ) : null}
      {state.problem ? <ProblemNotice placed={state.problem} what="The API refused this." /> : null}
      {state.freeze ? <ProblemNotice placed={state.freeze.placed} what="Not frozen." /> : null}
      {listProblem ? <ProblemNotice placed={new Placed(listProblem)} what="The revisions cannot be listed." /> : null}
      {freeze?.frozen ? (
        <div class="notice warn" role="status">
          <p style="margin:0">
            <strong>Frozen on revision {freeze.revision}</strong> by {freeze.actor ?? "unknown"} since{" "}
            {when(freeze.frozen_at ?? "")}: {freeze.reason}. {freeze.waiting_revisions ?? 0} revision(s) recorded since
            are waiting
            {freeze.latest_revision ? ` (the latest is ${freeze.latest_revision})` : ""}; health cannot act while
            frozen.
          </p>
          {admin ? (
            <form method="post" action="/ui/history/release" style="margin-top:.5rem">
              <Csrf token={ui.csrf} />
              <button type="submit">Release the freeze</button>
            </form>
          ) : null}
        </div>
      ) : (
        <p class="muted">
          Not frozen: every instance serves the newest config.
          {admin ? " To roll back, freeze on an earlier revision." : ""}
        </p>
      )}
      {items.length === 0 && !listProblem ? (
        <p class="muted">No revision {before ? `before ${before}` : "is recorded yet"}.</p>
      ) : (
        <DataTable columns={["Revision", "Time", "Cause", "Actor", "Detail", "Changes", "State", admin && "Actions"]}>
          {items.map((r) => (
            <tr id={`r${r.revision}`}>
              <td>
                <a href={`/ui/history/${r.revision}`} aria-label={`Revision ${r.revision}: its changes`}>
                  {r.revision}
                </a>
              </td>
              <td>{when(r.created_at)}</td>
              <td>{r.cause}</td>
              <td>{r.actor ?? <span class="muted">—</span>}</td>
              <td>{r.detail ?? <span class="muted">—</span>}</td>
              <td>
                <SummaryCounts s={r.summary} />
              </td>
              <td>
                <Markers r={r} frozen={freeze?.frozen ? freeze.revision : undefined} />
              </td>
              {admin ? (
                <td>
                  <RevisionActions r={r} csrf={ui.csrf} freeze={state.freeze} />
                </td>
              ) : null}
            </tr>
          ))}
        </DataTable>
      )}
      <nav aria-label="Pages" class="pager">
        {before ? <a href="/ui/history">Newest</a> : null}
        {!listProblem && listReply.body.next_before ? (
          <a href={`/ui/history?before=${listReply.body.next_before}`}>Older revisions →</a>
        ) : null}
      </nav>
    </Page>,
    status,
  );
}

function SummaryCounts({ s }: { s: Summary }) {
  const parts = [
    [s.added ?? 0, "added", "ok"],
    [s.removed ?? 0, "removed", "bad"],
    [s.changed ?? 0, "changed", "warn"],
  ] as const;
  const shown = parts.filter(([n]) => n > 0);
  if (shown.length === 0) {
    return <span class="muted">no change</span>;
  }
  return (
    <span>
      {shown.map(([n, word, cls], i) => (
        <>
          {i > 0 ? ", " : ""}
          <span class={cls}>
            {n} {word}
          </span>
        </>
      ))}
    </span>
  );
}

function Markers({ r, frozen }: { r: Revision; frozen: number | undefined }) {
  const marks: [string, string][] = [];
  if (r.served_now) {
    marks.push(["served now", "ok"]);
  }
  if (frozen === r.revision) {
    marks.push(["frozen on", "warn"]);
  }
  if (r.held && !r.confirmed_at) {
    marks.push(["held by the guard", "bad"]);
  }
  if (r.confirmed_at) {
    marks.push([`confirmed by ${r.confirmed_by ?? "unknown"}`, "ok"]);
  }
  if (!r.first_served_at && !r.served_now) {
    marks.push(["never served", "muted"]);
  }
  if (marks.length === 0) {
    return <span class="muted">served before</span>;
  }
  return (
    <span>
      {marks.map(([text, cls]) => (
        <span class={`pill ${cls}`} style="margin:0 .25rem .25rem 0">
          {text}
        </span>
      ))}
    </span>
  );
}

function RevisionActions({ r, csrf, freeze }: { r: Revision; csrf: string; freeze: HistoryState["freeze"] }) {
  const refused = freeze && freeze.revision === String(r.revision) ? freeze : undefined;
  const id = `reason-${r.revision}`;
  const reasonErr = refused ? refused.placed.field("reason") : [];
  return (
    <>
      {r.held && !r.confirmed_at ? (
        <form method="post" action={`/ui/history/${r.revision}/confirm`} style="margin-bottom:.25rem">
          <Csrf token={csrf} />
          <button type="submit">Confirm revision {r.revision}</button>
        </form>
      ) : null}
      <details open={refused !== undefined}>
        <summary style="white-space:nowrap">Freeze here…</summary>
        <form method="post" action="/ui/history/freeze">
          <Csrf token={csrf} />
          <input type="hidden" name="revision" value={String(r.revision)} />
          <label for={id}>
            Reason
            <input
              id={id}
              name="reason"
              required
              maxlength={500}
              value={refused?.reason ?? ""}
              placeholder="INC-1234: bad deploy"
              {...invalidAttrs(id, reasonErr)}
            />
            <FieldError id={id} messages={reasonErr} />
          </label>
          <button type="submit" style="margin-top:.25rem">
            Freeze on {r.revision}
          </button>
        </form>
      </details>
    </>
  );
}

function RevisionFacts({ r }: { r: Revision }) {
  return (
    <dl style="display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0">
      <dt class="muted">Recorded</dt>
      <dd style="margin:0">{when(r.created_at)}</dd>
      <dt class="muted">Cause</dt>
      <dd style="margin:0">
        {r.cause}
        {r.actor ? ` by ${r.actor}` : ""}
        {r.detail ? `: ${r.detail}` : ""}
      </dd>
      <dt class="muted">State</dt>
      <dd style="margin:0">
        <Markers r={r} frozen={undefined} />
      </dd>
      <dt class="muted">Hash</dt>
      <dd style="margin:0">
        <code style="word-break:break-all">{r.hash}</code> ({r.bytes} bytes)
      </dd>
    </dl>
  );
}

const SECTION_LABEL: Record<string, string> = {
  routers: "Routers",
  services: "Services",
  middlewares: "Middlewares",
  serversTransports: "Servers transports",
  "tls.certificates": "TLS certificates",
  "tls.options": "TLS options",
  "tls.stores": "TLS stores",
};

const CHANGE_MARK = {
  added: ["+ added", "ok"],
  removed: ["− removed", "bad"],
  changed: ["~ changed", "warn"],
} as const;

/** A field's value; a long one (a certificate's PEM) is cut, saying how long it is. */
function shownValue(v: unknown): string {
  const s = v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 160 ? `${s.slice(0, 120)}… (${s.length} characters)` : s;
}

/** A config diff (the revisions' and the preview's): counts, then every entry added, removed or changed. */
export function DiffView({ diff }: { diff: ConfigDiff }) {
  const { added = 0, removed = 0, changed = 0 } = diff.summary;
  if (diff.changes.length === 0) {
    return <p class="muted">No difference: Traefik is served the same routers, services and middlewares.</p>;
  }
  const sections = [...new Set(diff.changes.map((x) => x.section))];
  return (
    <div class="diff">
      <p>
        <SummaryCounts s={{ added, removed, changed }} />{" "}
        <span class="muted">
          ({diff.changes.length} entr{diff.changes.length === 1 ? "y" : "ies"})
        </span>
      </p>
      {sections.map((section) => (
        <section>
          <h3 style="font-size:1rem;margin:1rem 0 .25rem">{SECTION_LABEL[section] ?? section}</h3>
          <DataTable columns={["Change", "Name", "Field", "Before", "After"]}>
            {diff.changes
              .filter((x) => x.section === section)
              .map((x) => {
                const [mark, cls] = CHANGE_MARK[x.change];
                const fields = x.fields ?? [];
                const span = Math.max(1, fields.length);
                const head = (
                  <>
                    <td rowspan={span} class={cls} style="white-space:nowrap">
                      {mark}
                    </td>
                    <td rowspan={span}>
                      <code style="word-break:break-all">{x.name}</code>
                    </td>
                  </>
                );
                if (fields.length === 0) {
                  return (
                    <tr>
                      {head}
                      <td colspan={3} class="muted">
                        {x.change === "added" ? "new entry" : x.change === "removed" ? "entry removed" : ""}
                      </td>
                    </tr>
                  );
                }
                return fields.map((f, i) => (
                  <tr>
                    {i === 0 ? head : null}
                    <td>
                      <code>{f.path}</code>
                    </td>
                    <td>
                      <code style="word-break:break-all">{shownValue(f.before)}</code>
                    </td>
                    <td>
                      <code style="word-break:break-all">{shownValue(f.after)}</code>
                    </td>
                  </tr>
                ));
              })}
          </DataTable>
        </section>
      ))}
    </div>
  );
}
