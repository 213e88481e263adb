/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Authenticator } from "../api/scopes.js";
import type { Clock } from "../lib/clock.js";
import { Page } from "./layout.js";
import { registerCertificatePages } from "./pages/certificates.js";
import { registerDeploymentPages } from "./pages/deployments.js";
import { registerEventPages } from "./pages/events.js";
import { registerHistoryPages } from "./pages/history.js";
import { registerOverviewPage } from "./pages/overview.js";
import { registerPreviewPages } from "./pages/preview.js";
import { registerResolvePage } from "./pages/resolve.js";
import {
  csrfMatches,
  csrfToken,
  openSession,
  SESSION_COOKIE,
  SESSION_MAX_AGE_SECONDS,
  sealSession,
  sessionKeys,
} from "./session.js";
import type { ConsoleApp, ConsoleEnv } from "./types.js";

export interface ConsoleDeps {
  auth: Authenticator;
  certKey: Buffer;
  clock: Clock;
  /** The service's own app (in-process requests, no socket). */
  request(path: string, init: RequestInit, env?: unknown): Promise<Response>;
}

const isHttps = (url: string, forwardedProto: string | undefined) =>
  url.startsWith("https:") || forwardedProto?.split(",")[0]?.trim() === "https";

/**
 * The admin console at /ui: server-rendered pages over the same API (every read and write goes through /api/v1
 * with the operator's token, so scopes, validation and the audit log are the API's own).
 */
export function consoleApp(deps: ConsoleDeps): ConsoleApp {
  const keys = sessionKeys(deps.certKey);
  const app = new Hono<ConsoleEnv>();

  app.get("/login", (c) => c.html(<LoginPage />));
  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const caller = token ? await deps.auth.callerOf(token) : undefined;
    if (!caller?.scopes.has("read")) {
      // Never echo the token; say why without telling which tokens exist.
      const error = caller ? "That token has no read scope." : "That token was not accepted.";
      return c.html(<LoginPage error={error} />, caller ? 403 : 401);
    }
    setCookie(c, SESSION_COOKIE, sealSession(keys, token, deps.clock.now()), {
      httpOnly: true,
      sameSite: "Strict",
      secure: isHttps(c.req.url, c.req.header("x-forwarded-proto")),
      path: "/ui",
      maxAge: SESSION_MAX_AGE_SECONDS,
    });
    return c.redirect("/ui", 303);
  });

  // Everything else needs a live session; every POST also needs the session's CSRF token.
  app.use("*", async (c, next) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const token = openSession(keys, cookie, deps.clock.now());
    const caller = token ? await deps.auth.callerOf(token) : undefined;
    if (!cookie || !token || !caller?.scopes.has("read")) {
      deleteCookie(c, SESSION_COOKIE, { path: "/ui" });
      return c.req.method === "GET" ? c.redirect("/ui/login", 303) : c.text("Log in again.", 401);
    }
    const csrf = csrfToken(keys, cookie);
    if (c.req.method === "POST") {
      const presented = c.req.header("x-csrf-token") ?? (await formField(c.req.raw.clone(), "_csrf"));
      if (!csrfMatches(keys, cookie, presented)) {
        return c.html(
          <Page title="Refused" path={c.req.path} caller={caller} csrf={csrf}>
            <h1>Refused</h1>
            <p class="notice bad" role="alert">
              This form was not sent from the console (its CSRF token is missing or wrong). Reload the page and try
              again.
            </p>
          </Page>,
          403,
        );
      }
    }
    // The API sees the browser's connection (c.env: the client address in audit rows) and this request's id (one
    // id ties the page and the API calls it made together in the logs).
    const requestId = (c.get as (key: string) => unknown)("requestId");
    const fetchAs = (path: string, init: RequestInit = {}) =>
      deps.request(
        path,
        {
          ...init,
          headers: {
            ...(init.headers as Record<string, string>),
            authorization: `Bearer ${token}`,
            ...(typeof requestId === "string" ? { "x-request-id": requestId } : {}),
          },
        },
        c.env,
      );
    c.set("console", {
      caller,
      csrf,
      fetch: fetchAs,
      async api<T>(method: string, path: string, body?: unknown) {
        const res = await fetchAs(path, {
          method,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
        });
        const text = await res.text();
        return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
      },
      can: (scope) => caller.scopes.has(scope),
    });
    return next();
  });

  app.post("/logout", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/ui" });
    return c.redirect("/ui/login", 303);
  });

  registerOverviewPage(app);
  registerDeploymentPages(app);
  registerResolvePage(app);
  registerCertificatePages(app);
  registerHistoryPages(app);
  registerPreviewPages(app);
  registerEventPages(app);
  return app;
}

async function formField(req: Request, name: string): Promise<string | undefined> {
  const type = req.headers.get("content-type") ?? "";
  if (!type.includes("form")) {
    return undefined;
  }
  try {
    const value = (await req.formData()).get(name);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

function LoginPage({ error }: { error?: string }) {
  return (
    <Page title="Log in" path="/ui/login">
      <h1>Log in</h1>
      <p class="muted">
        Paste an API token: <code>ADMIN_TOKEN</code> or a managed token (<code>obr_…</code>) with at least the{" "}
        <code>read</code> scope. It is kept in an HttpOnly cookie, never in the page.
      </p>
      {error ? (
        <p class="notice bad" role="alert">
          {error}
        </p>
      ) : null}
      <form method="post" action="/ui/login" class="inline">
        <label>
          Token
          <input type="password" name="token" autocomplete="current-password" required size={48} />
        </label>
        <button type="submit">Log in</button>
      </form>
    </Page>
  );
}
