// Domain ownership verification (DOMAIN_VERIFICATION=required): TXT lookups, the policy new routes are stored
// with, and the background job that re-checks pending domains with backoff and expires the stale ones.
import { randomBytes } from "node:crypto";
import { Resolver } from "node:dns/promises";
import type { RoutingRow } from "../../schema/tables.js";
import type { Config } from "../config/env.js";
import type { DbHandle } from "../db/client.js";
import { Conflict } from "../db/errors.js";
import { backOffPending, claimDuePending, expirePending, markVerified } from "../db/repo/domain-verification.js";
import type { DomainProof } from "../db/repo/route-ownership.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { challengeName, isPlatformDomain, recheckDelayMs } from "./challenge.js";

/** Looks up the TXT records of a name: each record's strings joined. Tests inject one (or a loopback DNS server). */
export type TxtResolver = (name: string) => Promise<string[]>;

/** A TXT lookup that failed for another reason than "no such name / no such record" (SERVFAIL, timeout, refused). */
export class DnsLookupError extends Error {
  constructor(
    readonly host: string,
    readonly reason: string,
  ) {
    super(`TXT lookup of ${host} failed: ${reason}`);
    this.name = "DnsLookupError";
  }
}

// c-ares codes for "the name or the record does not exist": an answer, not a failure.
const NO_RECORDS = new Set(["ENOTFOUND", "ENODATA"]);

/** Per try; two tries, so a lookup gives up after about 5 s. */
const LOOKUP_TIMEOUT_MS = 2500;

/** TXT lookups through DOMAIN_VERIFICATION_DNS (`ip`, `ip:port`, `[ipv6]:port`), or the system's resolvers. */
export function systemTxtResolver(servers: readonly string[]): TxtResolver {
  const resolver = new Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: 2 });
  if (servers.length > 0) {
    try {
      resolver.setServers([...servers]);
    } catch (err) {
      throw new Error(`DOMAIN_VERIFICATION_DNS: ${(err as Error).message} (give ip, ip:port or [ipv6]:port)`);
    }
  }
  return async (name) => {
    try {
      const records = await resolver.resolveTxt(name);
      return records.map((chunks) => chunks.join(""));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "unknown error";
      if (NO_RECORDS.has(code)) {
        return [];
      }
      throw new DnsLookupError(name, code);
    }
  };
}

/** 32 base64url characters (192 random bits). */
export function newVerificationToken(): string {
  return randomBytes(24).toString("base64url");
}

/** The background job's first look at a new pending domain. */
export const FIRST_CHECK_MS = 30_000;
/** Backoff of the re-checks: 1 min · 2^attempts, at most an hour. */
export const RECHECK_BASE_MS = 60_000;
export const RECHECK_CAP_MS = 3_600_000;
/** A claimed route is not claimed again (by any instance) for this long, while it is being looked up. */
const CLAIM_LEASE_MS = 60_000;
const BATCH = 100;

/** How new routes are stored under this config at `now`; undefined when DOMAIN_VERIFICATION=off. */
export function domainProof(config: Config, now: Date): DomainProof | undefined {
  if (config.DOMAIN_VERIFICATION !== "required") {
    return undefined;
  }
  return {
    needed: (domain) => !isPlatformDomain(domain, config.PLATFORM_DOMAINS),
    now,
    expiresAt: new Date(now.getTime() + config.DOMAIN_VERIFICATION_TTL_HOURS * 3_600_000),
    nextCheckAt: new Date(now.getTime() + FIRST_CHECK_MS),
    newToken: newVerificationToken,
  };
}

/** What one lookup of a challenge name found. */
export type TxtLookup = { ok: true; records: string[] } | { ok: false; reason: string };

/** Looks up `_obiente-challenge.<domain>`; a failure is an answer too (`ok: false`), never a throw. */
export async function lookupChallenge(resolveTxt: TxtResolver, domain: string): Promise<TxtLookup> {
  try {
    return { ok: true, records: await resolveTxt(challengeName(domain)) };
  } catch (err) {
    // c-ares codes are fit to show; anything else (an injected resolver's bug) is not echoed.
    return { ok: false, reason: err instanceof DnsLookupError ? err.reason : "resolver error" };
  }
}

export interface VerificationJobDeps {
  config: Config;
  handle: DbHandle;
  resolveTxt: TxtResolver;
  clock: Clock;
  logger: Logger;
  /** Between rounds (default 30 s). */
  intervalMs?: number;
}

export interface RoundResult {
  verified: RoutingRow[];
  expired: RoutingRow[];
  /** Checked without finding the token (or the lookup failed): backed off. */
  retried: number;
}

/**
 * One round of the background job at `now`: deletes pending routes past their expiry (`domain.expired`), then
 * claims the due ones, looks each challenge name up once, verifies the routes whose token is there
 * (`domain.verified`) and backs the others off. Tests call it with their own clock.
 */
export async function runVerificationRound(
  deps: Pick<VerificationJobDeps, "handle" | "resolveTxt" | "logger">,
  now: Date,
): Promise<RoundResult> {
  const { db } = deps.handle;
  const expired = await expirePending(db, now, BATCH);
  for (const r of expired) {
    deps.logger.info("pending domain expired", { deploymentId: r.deploymentId, domain: r.domain, path: r.pathPrefix });
  }
  const due = await claimDuePending(db, now, BATCH, CLAIM_LEASE_MS);
  const lookups = new Map<string, Promise<TxtLookup>>();
  const lookup = (domain: string) => {
    const name = challengeName(domain);
    let found = lookups.get(name);
    if (!found) {
      found = lookupChallenge(deps.resolveTxt, domain);
      lookups.set(name, found);
    }
    return found;
  };
  const verified: RoutingRow[] = [];
  let retried = 0;
  for (const route of due) {
    const answer = await lookup(route.domain);
    if (answer.ok && route.verificationToken !== null && answer.records.includes(route.verificationToken)) {
      try {
        verified.push(...(await markVerified(db, [route], now)));
        deps.logger.info("domain verified", { deploymentId: route.deploymentId, domain: route.domain });
        continue;
      } catch (err) {
        if (!(err instanceof Conflict)) {
          throw err;
        }
        // Another deployment proved it first: this one keeps waiting (and expires) unless that one lets go.
      }
    } else if (!answer.ok) {
      deps.logger.debug("ownership TXT lookup failed", { domain: route.domain, reason: answer.reason });
    }
    const attempts = route.verificationAttempts + 1;
    const next = new Date(now.getTime() + recheckDelayMs(attempts, RECHECK_BASE_MS, RECHECK_CAP_MS));
    await backOffPending(db, route.id, attempts, next);
    retried++;
  }
  return { verified, expired, retried };
}

/**
 * Re-checks pending domains with backoff and expires the stale ones, every `intervalMs`, only when
 * DOMAIN_VERIFICATION=required; returns its stop function (which waits for a round in flight).
 */
export async function startDomainVerificationJob(deps: VerificationJobDeps): Promise<() => Promise<void>> {
  if (deps.config.DOMAIN_VERIFICATION !== "required") {
    return async () => {};
  }
  let inFlight: Promise<void> | undefined;
  const tick = () => {
    if (inFlight) {
      return; // the previous round is still running
    }
    inFlight = runVerificationRound(deps, deps.clock.now())
      .then(
        () => {},
        (err: unknown) => deps.logger.warn("domain verification round failed", { err }),
      )
      .finally(() => {
        inFlight = undefined;
      });
  };
  const timer = setInterval(tick, deps.intervalMs ?? 30_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}
