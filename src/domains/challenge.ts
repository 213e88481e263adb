// Pure parts of domain ownership verification: which names need proof, and which TXT record proves one.

/** The label the ownership TXT record sits under: `_obiente-challenge.<domain>`. */
export const CHALLENGE_LABEL = "_obiente-challenge";

/** The host a route's domain stands for: a wildcard `*.example.com` is proven at `example.com`. */
const baseOf = (domain: string) => (domain.startsWith("*.") ? domain.slice(2) : domain);

/** Where the ownership TXT record of `domain` must be created. */
export function challengeName(domain: string): string {
  return `${CHALLENGE_LABEL}.${baseOf(domain)}`;
}

/** The TXT record that proves ownership of `domain` with `token`. */
export function challengeRecord(domain: string, token: string): { type: "TXT"; name: string; value: string } {
  return { type: "TXT", name: challengeName(domain), value: token };
}

/**
 * True when `domain` is one of the platform's own suffixes or under one, on whole labels: `x.obiente.app`,
 * `*.x.obiente.app` and `obiente.app` are under `obiente.app`; `notobiente.app` is not.
 */
export function isPlatformDomain(domain: string, platformDomains: readonly string[]): boolean {
  const host = baseOf(domain.toLowerCase());
  return platformDomains.some((suffix) => suffix !== "" && (host === suffix || host.endsWith(`.${suffix}`)));
}

/** Exponential backoff of the background re-check: `base · 2^attempts`, at most `cap` (milliseconds). */
export function recheckDelayMs(attempts: number, baseMs: number, capMs: number): number {
  return Math.min(baseMs * 2 ** Math.min(attempts, 30), capMs);
}
