/** @jsxImportSource hono/jsx */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import type { Caller } from "../api/identity.js";

// The console's page shell: one small stylesheet, no script but the page's own (progressive enhancement), no CDN.

export const NAV = [
  ["/ui", "Overview"],
  ["/ui/deployments", "Deployments"],
  ["/ui/resolve", "Resolve"],
  ["/ui/certificates", "Certificates"],
  ["/ui/history", "History"],
  ["/ui/preview", "Preview"],
  ["/ui/events", "Events"],
] as const;

const CSS = `
:root{--fg:#1b1f24;--muted:#57606a;--bg:#fff;--panel:#f6f8fa;--line:#d0d7de;--accent:#0a5bd3;--ok:#1a7f37;--bad:#c21d2f;--warn:#8a5a00}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--panel:#161b22;--line:#30363d;--accent:#58a6ff;--ok:#3fb950;--bad:#ff7b72;--warn:#d29922}}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.5rem;padding:.6rem 1rem;border-bottom:1px solid var(--line);background:var(--panel)}
header .brand{font-weight:700;text-decoration:none;color:var(--fg)}header nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}
header nav a{text-decoration:none;padding:.15rem 0}header nav a[aria-current=page]{font-weight:700;border-bottom:2px solid var(--accent)}
header .who{margin-left:auto;display:flex;gap:.5rem;align-items:center;color:var(--muted);font-size:.9rem}
main{max-width:72rem;margin:0 auto;padding:1rem}h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:.75rem}
.card{border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem;background:var(--panel)}.card .n{font-size:1.6rem;font-weight:700}
.card .l{color:var(--muted);font-size:.85rem}
table{width:100%;border-collapse:collapse;margin:.5rem 0}th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.85rem;color:var(--muted);font-weight:600}.scroll{overflow-x:auto}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.75rem;overflow:auto;max-height:28rem}
.pill{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.8rem;font-weight:600;border:1px solid currentColor}
.healthy,.ok{color:var(--ok)}.unhealthy,.bad{color:var(--bad)}.unknown,.warn{color:var(--warn)}.muted{color:var(--muted)}
form.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}label{display:flex;flex-direction:column;gap:.2rem;font-size:.9rem}
input,select,textarea{font:inherit;padding:.4rem .5rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
textarea{width:100%;min-height:8rem}button{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button.secondary{background:transparent;color:var(--accent)}.notice{border-left:4px solid var(--accent);background:var(--panel);padding:.5rem .75rem;margin:.75rem 0}
.notice.bad{border-color:var(--bad)}.notice.warn{border-color:var(--warn)}.pager{display:flex;gap:1rem;margin:.5rem 0}
@media (max-width:40rem){header .who{margin-left:0}td,th{padding:.35rem .3rem}main{padding:.75rem}}
`;

export interface PageProps {
  title: string;
  path: string;
  caller?: Caller | undefined;
  csrf?: string | undefined;
  children?: Child;
  /** An inline module script (the page's live part), a constant of the code; the page must work without it. */
  script?: string | undefined;
}

/** The HTML document every console page is rendered into. */
export function Page({ title, path, caller, csrf, children, script }: PageProps) {
  return (
    <>
      {raw("<!doctype html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="referrer" content="no-referrer" />
          <title>{`${title} · obiente-router`}</title>
          <style>{raw(CSS)}</style>
        </head>
        <body>
          <header>
            <a class="brand" href="/ui">
              obiente-router
            </a>
            {caller ? (
              <nav aria-label="Main">
                {NAV.map(([href, label]) => (
                  <a href={href} aria-current={isCurrent(path, href) ? "page" : undefined}>
                    {label}
                  </a>
                ))}
              </nav>
            ) : null}
            {caller ? (
              <div class="who">
                <span>
                  {caller.tokenName} <span class="muted">({[...caller.scopes].sort().join(", ")})</span>
                </span>
                <form method="post" action="/ui/logout">
                  <input type="hidden" name="_csrf" value={csrf ?? ""} />
                  <button class="secondary" type="submit">
                    Log out
                  </button>
                </form>
              </div>
            ) : null}
          </header>
          <main id="main">{children}</main>
          {/* Page scripts are constants of the code (data reaches them through data- attributes): never user input. */}
          {script ? <script type="module">{raw(script)}</script> : null}
        </body>
      </html>
    </>
  );
}

function isCurrent(path: string, href: string): boolean {
  return href === "/ui" ? path === "/ui" || path === "/ui/" : path === href || path.startsWith(`${href}/`);
}

/** A health word with its colour and a text label (never colour alone). */
export function Health({ status }: { status: string }) {
  return <span class={`pill ${status}`}>{status}</span>;
}

/**
 * A table of rows with its column headers (`scope="col"`), scrolling sideways on a narrow screen; a falsy column
 * (a control shown to some scopes only) is left out.
 */
export function DataTable({
  columns,
  caption,
  bodyId,
  children,
}: {
  columns: (string | false | null | undefined)[];
  /** Says what the rows are (shown above the table, read first by screen readers). */
  caption?: Child;
  bodyId?: string;
  children?: Child;
}) {
  return (
    <div class="scroll">
      <table>
        {caption ? (
          <caption class="muted" style="text-align:left">
            {caption}
          </caption>
        ) : null}
        <thead>
          <tr>
            {columns
              .filter((c): c is string => typeof c === "string")
              .map((c) => (
                <th scope="col">{c}</th>
              ))}
          </tr>
        </thead>
        <tbody id={bodyId}>{children}</tbody>
      </table>
    </div>
  );
}

/** A hidden CSRF field for a form that writes. */
export function Csrf({ token }: { token: string }) {
  return <input type="hidden" name="_csrf" value={token} />;
}
