/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import { EVENT_TYPES } from "../../db/repo/events.js";
import type { EventJson } from "../../events/view.js";
import { DataTable, Page } from "../layout.js";
import type { Console, ConsoleApp, ConsoleEnv } from "../types.js";
import { Placed, ProblemNotice, problemOf } from "./problem.js";

// Events: the newest events in a table, new ones added live; and the console's SSE proxy (the page's EventSource
// carries the session cookie, the API wants the token: the proxy calls the API stream as the session).

const SHOWN = 50;

export type { EventJson };

interface EventFilter {
  type?: string | undefined;
  deployment_id?: string | undefined;
}

const eventsPath = (f: EventFilter, extra: Record<string, string>) => {
  const q = new URLSearchParams(extra);
  if (f.type) {
    q.set("type", f.type);
  }
  if (f.deployment_id) {
    q.set("deployment_id", f.deployment_id);
  }
  return `/api/v1/events?${q}`;
};

/** The newest `n` events matching `filter`, newest first (GET /api/v1/events?order=desc). */
export async function newestEvents(
  ui: Pick<Console, "api">,
  filter: EventFilter,
  n: number,
): Promise<{ status: number; body: unknown; items: EventJson[] }> {
  const r = await ui.api<{ items: EventJson[] }>("GET", eventsPath(filter, { order: "desc", limit: String(n) }));
  return r.status === 200 ? { status: 200, body: undefined, items: r.body.items } : { ...r, items: [] };
}

/** A line about an event's data, in words where the type is known. */
export function describeEvent(e: EventJson): string {
  const d = e.data;
  const s = (k: string) => (d[k] === undefined || d[k] === null ? "" : String(d[k]));
  switch (e.type) {
    case "replica.health_changed":
      return `${s("from")} → ${s("to")}${d.reason ? ` (${s("source")}: ${s("reason")})` : ""}`;
    case "config.revision":
      return `revision ${e.subject ?? ""}${d.cause ? `: ${s("cause")}` : ""}${d.actor ? ` by ${s("actor")}` : ""}`;
    default:
      return Object.entries(d)
        .filter(([, v]) => v === null || typeof v !== "object")
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(", ");
  }
}

/** GET /ui/events (the newest events, then live) and GET /ui/events/stream (the SSE proxy). */
export function registerEventPages(app: ConsoleApp): void {
  app.get("/events/stream", streamProxy);
  app.get("/events", eventsPage);
}

/**
 * Passes the API's event stream through as the session: only `type`, `deployment_id`, `last_event_id` and the
 * client's Last-Event-ID go upstream (the API validates them); a client that goes away cancels the upstream reader, which
 * ends the API's pump.
 */
async function streamProxy(c: Context<ConsoleEnv>) {
  const ui = c.get("console");
  const q = new URLSearchParams();
  // last_event_id: where the page was rendered; a reconnect's Last-Event-ID header (the newer one) wins upstream.
  for (const key of ["type", "deployment_id", "last_event_id"] as const) {
    const v = c.req.query(key);
    if (v !== undefined && v !== "") {
      q.set(key, v);
    }
  }
  const resume = c.req.header("last-event-id");
  const gone = new AbortController();
  const upstream = await ui.fetch(`/api/v1/events/stream?${q}`, {
    headers: resume ? { "last-event-id": resume } : {},
    signal: gone.signal,
  });
  if (upstream.status !== 200 || !upstream.body) {
    gone.abort();
    // EventSource gives up on a non-200: say why for whoever looks at the network tab.
    return c.body(await upstream.text(), upstream.status as 400, {
      "content-type": upstream.headers.get("content-type") ?? "text/plain",
    });
  }
  const reader = upstream.body.getReader();
  const stop = () => {
    gone.abort();
    reader.cancel().catch(() => {});
  };
  c.req.raw.signal.addEventListener("abort", stop, { once: true });
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch {
        // The upstream ended by an error or our own cancel: end the client's stream (EventSource reconnects).
        try {
          controller.close();
        } catch {
          // already closed by a cancel
        }
      }
    },
    cancel: stop,
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-store",
      "x-accel-buffering": "no",
    },
  });
}

async function eventsPage(c: Context<ConsoleEnv>) {
  const ui = c.get("console");
  const rawType = c.req.query("type") ?? "";
  const type = (EVENT_TYPES as readonly string[]).includes(rawType) ? rawType : "";
  const deploymentId = (c.req.query("deployment_id") ?? "").trim();
  const filter: EventFilter = {
    ...(type ? { type } : {}),
    ...(deploymentId ? { deployment_id: deploymentId } : {}),
  };
  const newest = await newestEvents(ui, filter, SHOWN);
  const placed = new Placed(problemOf(newest));
  const stream = `/ui/events/stream${new URLSearchParams(filter as Record<string, string>).size > 0 ? `?${new URLSearchParams(filter as Record<string, string>)}` : ""}`;
  return c.html(
    <Page title="Events" path={c.req.path} caller={ui.caller} csrf={ui.csrf} script={LIVE_EVENTS_SCRIPT}>
      <h1>Events</h1>
      <form method="get" action="/ui/events" class="inline">
        <label>
          Type
          <select name="type">
            <option value="" selected={type === ""}>
              every type
            </option>
            {EVENT_TYPES.map((t) => (
              <option value={t} selected={t === type}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Deployment id
          <input type="text" name="deployment_id" value={deploymentId} size={24} maxlength={64} />
        </label>
        <button type="submit">Show</button>
      </form>
      <ProblemNotice placed={placed} what="The events could not be read." />
      <p class="muted">
        The newest {SHOWN} events{type ? ` of type ${type}` : ""}
        {deploymentId ? ` of ${deploymentId}` : ""}, newest first.{" "}
        <span id="live" data-stream={stream} data-types={EVENT_TYPES.join(",")} aria-live="polite">
          New events appear live with JavaScript; reload otherwise.
        </span>
      </p>
      <DataTable columns={["#", "Time", "Type", "Deployment", "Subject", "Details"]} bodyId="events">
        {newest.items.map((e) => (
          <tr data-event-id={e.id}>
            <td>{e.id}</td>
            <td>
              <time datetime={e.at}>{`${e.at.slice(0, 10)} ${e.at.slice(11, 19)} UTC`}</time>
            </td>
            <td>
              <code>{e.type}</code>
            </td>
            <td>
              {e.deployment_id ? (
                <a href={`/ui/deployments/${encodeURIComponent(e.deployment_id)}`}>{e.deployment_id}</a>
              ) : (
                <span class="muted">—</span>
              )}
            </td>
            <td>{e.subject ?? <span class="muted">—</span>}</td>
            <td>{describeEvent(e)}</td>
          </tr>
        ))}
      </DataTable>
      {newest.items.length === 0 && !placed.problem ? (
        <p class="muted" id="no-events">
          No events yet.
        </p>
      ) : null}
    </Page>,
  );
}

/** New events, added on top of the table as the stream brings them (textContent only, never HTML). */
const LIVE_EVENTS_SCRIPT = `
const live = document.getElementById("live");
const body = document.getElementById("events");
if (live && body && "EventSource" in window) {
  const es = new EventSource(live.dataset.stream);
  es.onopen = () => { live.textContent = "Live: new events appear on top as they happen."; live.dataset.state = "open"; };
  es.onerror = () => { live.textContent = "Live updates interrupted: reconnecting…"; live.dataset.state = "retry"; };
  const cell = (text, cls) => { const td = document.createElement("td"); if (cls) td.className = cls; td.textContent = text; return td; };
  const describe = (e) => {
    const d = e.data || {};
    if (e.type === "replica.health_changed") return (d.from || "") + " → " + (d.to || "") + (d.reason ? " (" + (d.source || "") + ": " + d.reason + ")" : "");
    if (e.type === "config.revision") return "revision " + (e.subject || "") + (d.cause ? ": " + d.cause : "") + (d.actor ? " by " + d.actor : "");
    return Object.entries(d).filter(([, v]) => v === null || typeof v !== "object").map(([k, v]) => k + "=" + v).join(", ");
  };
  const add = (m) => {
    const e = JSON.parse(m.data);
    if (document.querySelector('tr[data-event-id="' + Number(e.id) + '"]')) return;
    document.getElementById("no-events")?.remove();
    const tr = document.createElement("tr");
    tr.dataset.eventId = String(e.id);
    const at = document.createElement("td");
    const t = document.createElement("time");
    t.dateTime = e.at;
    t.textContent = e.at.slice(0, 10) + " " + e.at.slice(11, 19) + " UTC";
    at.append(t);
    const type = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = e.type;
    type.append(code);
    const dep = document.createElement("td");
    if (e.deployment_id) {
      const a = document.createElement("a");
      a.href = "/ui/deployments/" + encodeURIComponent(e.deployment_id);
      a.textContent = e.deployment_id;
      dep.append(a);
    } else {
      dep.className = "muted";
      dep.textContent = "—";
    }
    tr.append(cell(String(e.id)), at, type, dep, cell(e.subject || "—"), cell(describe(e)));
    body.prepend(tr);
  };
  for (const type of live.dataset.types.split(",")) es.addEventListener(type, add);
}
`;
