import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./deps.js";
import { HttpProblem, problem } from "./problem.js";

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Constant-time membership test: compares SHA-256 digests so neither content nor length leaks through timing. */
export function tokenMatches(presented: string, tokens: readonly Buffer[]): boolean {
  const d = digest(presented);
  let ok = false;
  for (const t of tokens) {
    ok = timingSafeEqual(d, t) || ok; // no early exit
  }
  return ok;
}

export function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/** Names the caller in revisions and freezes without revealing the token: a prefix of its SHA-256 (until issue 14
 * names tokens). */
export function actorOf(realm: string, token: string): string {
  return `${realm === "admin-api" ? "admin" : realm}:${digest(token).toString("hex").slice(0, 8)}`;
}

/**
 * Requires `Authorization: Bearer <token>` from one of `tokens` whenever `required()` says so, and names the caller
 * (`actor`). The realm tells the client which token is meant (the provider and admin tokens are separate).
 */
export function requireBearer(
  realm: string,
  tokens: readonly string[],
  required: () => boolean = () => true,
): MiddlewareHandler<AppEnv> {
  const digests = tokens.map(digest);
  return async (c, next) => {
    if (!required()) {
      return next();
    }
    const presented = bearerOf(c.req.header("authorization"));
    if (digests.length === 0 || presented === undefined || !tokenMatches(presented, digests)) {
      throw new HttpProblem(
        problem("UNAUTHORIZED", `A valid bearer token for ${realm} is required.`, {
          headers: { "WWW-Authenticate": `Bearer realm="${realm}"` },
        }),
      );
    }
    c.set("actor", actorOf(realm, presented));
    return next();
  };
}
