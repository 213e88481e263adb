import type { TokenScope } from "../../schema/enums.js";

// Who is calling and what they changed: the types the request context carries (src/api/deps.ts), filled in by the
// auth middleware (src/api/scopes.ts) and read by the audit middleware (src/api/audit.ts).

/** The authenticated token behind an /api/v1 request. */
export interface Caller {
  /** `tok_…`, or `env:admin` / `env:provider` for a token from the environment. */
  tokenId: string;
  /** The token's name (ADMIN_TOKEN / PROVIDER_TOKEN for the environment's). */
  tokenName: string;
  scopes: ReadonlySet<TokenScope>;
  /** Deployment ids the token is limited to; undefined: every deployment. */
  restriction?: Restriction;
}

export interface Restriction {
  ids: readonly string[] | null;
  prefix: string | null;
}

/** A field a write changed, as the audit log shows it (secrets as "<redacted>"). */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** What a handler says about its write (the middleware fills in who, when, where from). */
export interface AuditNote {
  resourceType: string;
  resourceId?: string | null;
  deploymentId?: string | null;
  changes?: FieldChange[];
}
