// Domain ownership verification (DOMAIN_VERIFICATION=required). STUB: owned by the verification work (issue 14).
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";

/** Looks up the TXT records of a name: each record's strings joined. Tests inject one (or a loopback DNS server). */
export type TxtResolver = (name: string) => Promise<string[]>;

/** TXT lookups through DOMAIN_VERIFICATION_DNS, or the system's resolvers. */
export function systemTxtResolver(_servers: readonly string[]): TxtResolver {
  return async () => [];
}

export interface VerificationJobDeps {
  config: Config;
  handle: DbHandle;
  resolveTxt: TxtResolver;
  clock: Clock;
  logger: Logger;
}

/** Re-checks pending domains with backoff and expires the stale ones; returns its stop function. */
export async function startDomainVerificationJob(_deps: VerificationJobDeps): Promise<() => Promise<void>> {
  return async () => {};
}
