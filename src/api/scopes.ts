import { timingSafeEqual } from "node:crypto";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { TokenScope } from "../../schema/enums.js";
import type { ApiTokenRow } from "../../schema/tables.js";
import type { Db } from "../db/client.js";
import { findLiveToken, TOKEN_PREFIX, tokenHash, touchToken } from "../db/repo/tokens.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { bearerOf } from "./auth.js";
import type { AppEnv } from "./deps.js";
import type { Caller, Restriction } from "./identity.js";
import { HttpProblem, problem } from "./problem.js";

/** What a scope grants besides itself: admin everything, write and certificates also read. */
const IMPLIES: Record<TokenScope, readonly TokenScope[]> = {
  admin: ["read", "write", "certificates", "admin"],
  write: ["read", "write"],
  certificates: ["read", "certificates"],
  read: ["read"],
  provider: ["provider"],
};

/** The scopes a token effectively holds. */
export function effectiveScopes(granted: Iterable<TokenScope>): Set<TokenScope> {
  const out = new Set<TokenScope>();
  for (const s of granted) {
    for (const t of IMPLIES[s]) {
      out.add(t);
    }
  }
  return out;
}

/** May a token restricted this way touch this deployment? */
export function allowsDeployment(r: Restriction | undefined, id: string): boolean {
  if (!r) {
    return true;
  }
  return (r.ids?.includes(id) ?? false) || (r.prefix !== null && id.startsWith(r.prefix));
}

/** The caller a managed token row stands for. */
export function callerOfRow(row: ApiTokenRow): Caller {
  const restricted = row.deploymentIds !== null || row.deploymentPrefix !== null;
  return {
    tokenId: row.id,
    tokenName: row.name,
    scopes: effectiveScopes(row.scopes as TokenScope[]),
    ...(restricted ? { restriction: { ids: row.deploymentIds, prefix: row.deploymentPrefix } } : {}),
  };
}

const TOUCH_EVERY_MS = 60_000;

/** Constant-time equality of two hex digests of equal length. */
function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface Authenticator {
  /** The caller a bearer secret stands for, or undefined (unknown, revoked, expired). */
  callerOf(secret: string): Promise<Caller | undefined>;
}

/**
 * Bootstrap tokens from the environment (ADMIN_TOKEN: every scope; PROVIDER_TOKEN: provider) and managed `obr_`
 * tokens from the database, compared by their SHA-256 in constant time.
 */
export function authenticator(
  db: Db,
  env: { admin: readonly string[]; provider: readonly string[] },
  clock: Clock,
  logger: Logger,
): Authenticator {
  const touched = new Map<string, number>();
  const bootstrap = [
    ...env.admin.map((t) => ({ hash: tokenHash(t), caller: envCaller("admin") })),
    ...env.provider.map((t) => ({ hash: tokenHash(t), caller: envCaller("provider") })),
  ];
  return {
    async callerOf(secret) {
      const hash = tokenHash(secret);
      let found: Caller | undefined;
      for (const b of bootstrap) {
        if (sameDigest(hash, b.hash) && !found) {
          found = b.caller; // no early exit: every bootstrap token is compared
        }
      }
      if (found || !secret.startsWith(TOKEN_PREFIX)) {
        return found;
      }
      const now = clock.now();
      const row = await findLiveToken(db, hash, now);
      if (!row || !sameDigest(row.hash, hash)) {
        return undefined;
      }
      // last_used_at is written at most once a minute per token and instance (a poll every second must not write
      // every second); bookkeeping never fails the request it describes.
      const last = touched.get(row.id) ?? 0;
      if (now.getTime() - last >= TOUCH_EVERY_MS) {
        touched.set(row.id, now.getTime());
        await touchToken(db, row.id, now).catch((err: unknown) =>
          logger.warn("token last_used_at not updated", { err }),
        );
      }
      return callerOfRow(row);
    },
  };
}

function envCaller(kind: "admin" | "provider"): Caller {
  return {
    tokenId: `env:${kind}`,
    tokenName: kind === "admin" ? "ADMIN_TOKEN" : "PROVIDER_TOKEN",
    scopes: effectiveScopes([kind]),
  };
}

/** `{id}` → `:id`: OpenAPI path templates as hono routes name them. */
const honoPath = (openApiPath: string) => noTrailingSlash(openApiPath.replace(/\{([^}]+)\}/g, ":$1"));
/** `/api/v1/deployments/` and `/api/v1/deployments` are one route (a contract at `/` under a mount point). */
const noTrailingSlash = (p: string) => (p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);

/**
 * The scope each operation needs, read from the contracts' `security` (what /openapi.json shows), keyed by
 * `METHOD hono-path`. Built once the app has every contract.
 */
export function scopeTable(registry: OpenAPIHono["openAPIRegistry"]): Map<string, TokenScope> {
  const table = new Map<string, TokenScope>();
  for (const d of registry.definitions) {
    if (d.type !== "route") {
      continue;
    }
    const scope = d.route.security?.[0]?.apiToken?.[0] as TokenScope | undefined;
    if (scope) {
      table.set(`${d.route.method.toUpperCase()} ${honoPath(d.route.path)}`, scope);
    }
  }
  return table;
}

/** The route template that will answer this request (`/api/v1/deployments/:id/routing`), if any. */
export function endpointOf(c: Context): string | undefined {
  // The handler registered for this method (the 405 catch-alls are `ALL` routes after the contracts).
  const method = c.req.method === "HEAD" ? "GET" : c.req.method;
  const route = matchedRoutes(c).find((r) => r.method === method);
  return route && noTrailingSlash(route.path);
}

const DEPLOYMENT_PATH = /^\/api\/v1\/deployments\/([^/]+)/;

/** The deployment id a request path names, if any (`/api/v1/deployments/<id>/…`). */
export function deploymentIdOf(path: string): string | undefined {
  const m = DEPLOYMENT_PATH.exec(path);
  if (!m?.[1]) {
    return undefined;
  }
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return undefined; // a malformed escape: validation answers it
  }
}

function unauthorized(scope: TokenScope | undefined, realm: string): HttpProblem {
  const need = scope ? ` with the \`${scope}\` scope` : "";
  return new HttpProblem(
    problem("UNAUTHORIZED", `A valid bearer token${need} is required.`, {
      headers: { "WWW-Authenticate": `Bearer realm="${realm}"` },
      ...(scope ? { extra: { required_scope: scope } } : {}),
    }),
  );
}

/**
 * Authenticates every /api/v1 request and checks the scope its operation needs (from `scopes()`, the contracts'
 * table); a deployment-restricted token reaches its own deployments only: any other id answers 404 exactly as an
 * unknown one does, so ids of other tenants do not leak.
 */
export function requireScope(
  auth: Authenticator,
  scopes: () => ReadonlyMap<string, TokenScope>,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const route = endpointOf(c);
    // An operation with no contract (none today) needs admin; a path with no route at all still needs a token
    // before it learns that (a 404 must not tell an anonymous caller which paths exist).
    const needed: TokenScope =
      (route && scopes().get(`${c.req.method === "HEAD" ? "GET" : c.req.method} ${route}`)) || "admin";
    const secret = bearerOf(c.req.header("authorization"));
    const caller = secret === undefined ? undefined : await auth.callerOf(secret);
    if (!caller) {
      throw unauthorized(needed, "admin-api");
    }
    c.set("caller", caller);
    c.set("actor", caller.tokenName);
    if (!caller.scopes.has(needed)) {
      const held = [...caller.scopes].sort().join(", ") || "none";
      throw new HttpProblem(
        problem("FORBIDDEN", `This operation needs the \`${needed}\` scope; the token has: ${held}.`, {
          extra: { required_scope: needed },
        }),
      );
    }
    if (caller.restriction) {
      const id = deploymentIdOf(c.req.path);
      if (id !== undefined && !allowsDeployment(caller.restriction, id)) {
        throw new HttpProblem(problem("DEPLOYMENT_NOT_FOUND", `No deployment ${id}.`));
      }
      if (id === undefined && !c.req.path.replace(/\/$/, "").endsWith("/api/v1/deployments")) {
        throw new HttpProblem(
          problem(
            "TOKEN_RESTRICTED",
            "This token is restricted to some deployments: it reaches /api/v1/deployments and its own deployments only.",
          ),
        );
      }
    }
    return next();
  };
}

/** For the provider endpoint: a token with the provider scope (PROVIDER_TOKEN, ADMIN_TOKEN or a managed one). */
export function requireProvider(auth: Authenticator, required: () => boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!required()) {
      return next();
    }
    const secret = bearerOf(c.req.header("authorization"));
    const caller = secret === undefined ? undefined : await auth.callerOf(secret);
    if (!caller) {
      throw unauthorized("provider", "traefik-provider");
    }
    if (!caller.scopes.has("provider")) {
      throw new HttpProblem(
        problem("FORBIDDEN", "Polling the Traefik config needs the `provider` scope.", {
          extra: { required_scope: "provider" },
        }),
      );
    }
    c.set("caller", caller);
    c.set("actor", caller.tokenName);
    return next();
  };
}
