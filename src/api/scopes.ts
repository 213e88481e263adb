import type { TokenScope } from "../../schema/enums.js";

/** The authenticated token behind an /api/v1 request. */
export interface Caller {
  /** `tok_…`, or `env:admin` / `env:provider` for a token from the environment. */
  tokenId: string;
  /** The token's name (ADMIN_TOKEN / PROVIDER_TOKEN for the environment's). */
  tokenName: string;
  scopes: ReadonlySet<TokenScope>;
  /** Deployment ids the token is limited to; undefined: every deployment. */
  restriction?: { ids: readonly string[] | null; prefix: string | null };
}
