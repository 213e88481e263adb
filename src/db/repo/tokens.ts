import { createHash, randomBytes } from "node:crypto";
import { and, asc, eq, gt, isNull, lt, or } from "drizzle-orm";
import type { TokenScope } from "../../../schema/enums.js";
import { type ApiTokenRow, apiTokens } from "../../../schema/tables.js";
import type { Db } from "../client.js";
import { NotFound } from "../errors.js";
import { newId } from "../ids.js";

/** Managed tokens start with this, so a leaked one is recognisable (secret scanners, logs). */
export const TOKEN_PREFIX = "obr_";
/** Characters of the secret kept to tell tokens apart in a list (`obr_` + 8 of its 43 random characters). */
const SHOWN = TOKEN_PREFIX.length + 8;

/** Hex SHA-256: what is stored and looked up (a 256-bit random secret needs no slow hash). */
export const tokenHash = (secret: string) => createHash("sha256").update(secret).digest("hex");

export interface NewToken {
  name: string;
  scopes: TokenScope[];
  deploymentIds?: string[] | null | undefined;
  deploymentPrefix?: string | null | undefined;
  expiresAt?: Date | null | undefined;
  createdBy?: string | undefined;
}

/** Creates a token; the secret is returned here once and never stored. */
export async function createToken(db: Db, input: NewToken): Promise<{ row: ApiTokenRow; secret: string }> {
  const secret = `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const [row] = await db
    .insert(apiTokens)
    .values({
      id: newId("tok"),
      name: input.name,
      hash: tokenHash(secret),
      prefix: secret.slice(0, SHOWN),
      scopes: [...input.scopes].sort(),
      deploymentIds: input.deploymentIds ?? null,
      deploymentPrefix: input.deploymentPrefix ?? null,
      expiresAt: input.expiresAt ?? null,
      createdBy: input.createdBy ?? null,
    })
    .returning();
  if (!row) {
    throw new Error("insert returned no row");
  }
  return { row, secret };
}

/** Tokens in creation order; revoked ones only when asked. */
export async function listTokens(db: Db, includeRevoked: boolean): Promise<ApiTokenRow[]> {
  return db
    .select()
    .from(apiTokens)
    .where(includeRevoked ? undefined : isNull(apiTokens.revokedAt))
    .orderBy(asc(apiTokens.createdAt), asc(apiTokens.id));
}

export async function getToken(db: Db, id: string): Promise<ApiTokenRow> {
  const [row] = await db.select().from(apiTokens).where(eq(apiTokens.id, id));
  if (!row) {
    throw new NotFound("token", id);
  }
  return row;
}

/** Revokes a live token (404 for an unknown or already revoked one); returns it as it was. */
export async function revokeToken(db: Db, id: string, by: string | undefined, now: Date): Promise<ApiTokenRow> {
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: now, revokedBy: by ?? null })
    .where(and(eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
    .returning();
  if (!row) {
    throw new NotFound("token", id);
  }
  return row;
}

/** The live token with this hash, if any (revoked and expired ones are not). */
export async function findLiveToken(db: Db, hash: string, now: Date): Promise<ApiTokenRow | undefined> {
  const [row] = await db
    .select()
    .from(apiTokens)
    .where(
      and(
        eq(apiTokens.hash, hash),
        isNull(apiTokens.revokedAt),
        or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, now)),
      ),
    );
  return row;
}

/** Stamps `last_used_at`, at most once a minute per token (a poll every second must not write every second). */
export async function touchToken(db: Db, id: string, now: Date): Promise<void> {
  await db
    .update(apiTokens)
    .set({ lastUsedAt: now })
    .where(
      and(
        eq(apiTokens.id, id),
        or(isNull(apiTokens.lastUsedAt), lt(apiTokens.lastUsedAt, new Date(now.getTime() - 60_000))),
      ),
    );
}
