/** @jsxImportSource hono/jsx */

import { DataTable, Page } from "../layout.js";
import type { ConsoleApp } from "../types.js";

interface Stats {
  deployments: number;
  total_routes: number;
  replicas: Record<string, number>;
  certificates: {
    total: number;
    expiring_soon: { id: string; sans: string[]; not_after: string; expires_in_days: number }[];
  };
  config: { revision: number; hash: string; bytes: number; rendered_at: string; stale: boolean } | null;
  freeze: { revision: number; reason: string; actor: string | null; frozen_at: string } | null;
  guard: { held_revision: number; removed_percent: number; removed_routers: number; confirm: string } | null;
  pollers: { node: string; last_poll_at: string; polls: number; serving_current: boolean }[];
  timestamp: string;
}

const ago = (iso: string, now: string) => {
  const s = Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

/** GET /ui: the state of the platform on one screen. */
export function registerOverviewPage(app: ConsoleApp): void {
  app.get("/", async (c) => {
    const ui = c.get("console");
    const { body: s } = await ui.api<Stats>("GET", "/api/v1/routing/stats");
    const replicas = Object.entries(s.replicas ?? {});
    return c.html(
      <Page title="Overview" path={c.req.path} caller={ui.caller} csrf={ui.csrf}>
        <h1>Overview</h1>
        {s.freeze ? (
          <p class="notice warn" role="status">
            Frozen on revision {s.freeze.revision} by {s.freeze.actor ?? "unknown"} ({s.freeze.reason}): every instance
            serves that revision until the freeze is released.
          </p>
        ) : null}
        {s.guard ? (
          <p class="notice bad" role="status">
            The guard holds revision {s.guard.held_revision}: it would remove {s.guard.removed_routers} routers (
            {s.guard.removed_percent} %). Confirm with <code>{s.guard.confirm}</code>.
          </p>
        ) : null}
        <div class="cards">
          <div class="card">
            <div class="n">{s.deployments}</div>
            <div class="l">deployments</div>
          </div>
          <div class="card">
            <div class="n">{s.total_routes}</div>
            <div class="l">routes served</div>
          </div>
          {replicas.map(([health, n]) => (
            <div class="card">
              <div class={`n ${health}`}>{n}</div>
              <div class="l">{health.replace("_", " ")} replicas</div>
            </div>
          ))}
          <div class="card">
            <div class="n">{s.config ? s.config.revision : "—"}</div>
            <div class="l">
              config revision
              {s.config ? `, rendered ${ago(s.config.rendered_at, s.timestamp)}` : ", none yet"}
              {s.config?.stale ? " (stale: database unreachable)" : ""}
            </div>
          </div>
        </div>
        <h2>Traefik pollers</h2>
        {s.pollers.length === 0 ? (
          <p class="muted">No Traefik node has polled this instance yet.</p>
        ) : (
          <DataTable columns={["Node", "Last poll", "Polls", "Config"]}>
            {s.pollers.map((p) => (
              <tr>
                <td>{p.node}</td>
                <td>{ago(p.last_poll_at, s.timestamp)}</td>
                <td>{p.polls}</td>
                <td class={p.serving_current ? "ok" : "bad"}>{p.serving_current ? "current" : "behind"}</td>
              </tr>
            ))}
          </DataTable>
        )}
        <h2>Certificates expiring soon</h2>
        {s.certificates.expiring_soon.length === 0 ? (
          <p class="muted">None of the {s.certificates.total} uploaded certificates expires soon.</p>
        ) : (
          <ul>
            {s.certificates.expiring_soon.map((x) => (
              <li>
                <a href={`/ui/certificates#${x.id}`}>{x.sans.join(", ")}</a>: {x.expires_in_days} days ({x.not_after})
              </li>
            ))}
          </ul>
        )}
      </Page>,
    );
  });
}
