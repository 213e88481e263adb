import type { Db } from "../db/client.js";
import { type CertificateMeta, listCertificates } from "../db/repo/certificates.js";
import { recordEventOnce } from "../db/repo/events.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";

const DAY = 86_400_000;

/** Certificates that expire within `days` of `now` (pure). */
export function expiringSoon(certs: readonly CertificateMeta[], now: Date, days: number) {
  return certs
    .filter((c) => c.notAfter.getTime() - now.getTime() < days * DAY)
    .map((c) => ({
      id: c.id,
      sans: c.sans,
      not_after: c.notAfter.toISOString(),
      expires_in_days: Math.floor((c.notAfter.getTime() - now.getTime()) / DAY),
    }));
}

/**
 * Records `certificate.expiring` for each certificate within `days` of its end and `certificate.expired` for each
 * past it, each at most once per certificate (instances and restarts run the same check; an uploaded certificate
 * never changes, a new upload gets a new id). Returns the events recorded now.
 */
export async function recordCertificateExpiry(db: Db, now: Date, days: number): Promise<string[]> {
  const recorded: string[] = [];
  for (const c of expiringSoon(await listCertificates(db), now, days)) {
    const expired = new Date(c.not_after).getTime() <= now.getTime();
    const type = expired ? "certificate.expired" : "certificate.expiring";
    const data = expired
      ? { not_after: c.not_after, sans: c.sans }
      : { not_after: c.not_after, days_left: c.expires_in_days, sans: c.sans };
    if (await recordEventOnce(db, { type, subject: c.id, data })) {
      recorded.push(`${type} ${c.id}`);
    }
  }
  return recorded;
}

/**
 * Logs one warning per certificate expiring soon and records its expiring/expired events: at start, then daily
 * (node-cron, 09:00 local).
 */
export async function startExpiryWarnings(deps: {
  db: Db;
  logger: Logger;
  clock: Clock;
  days: number;
}): Promise<() => void> {
  const check = async () => {
    try {
      for (const c of expiringSoon(await listCertificates(deps.db), deps.clock.now(), deps.days)) {
        deps.logger.warn("uploaded certificate expires soon", {
          certificateId: c.id,
          sans: c.sans,
          notAfter: c.not_after,
          days: c.expires_in_days,
        });
      }
      await recordCertificateExpiry(deps.db, deps.clock.now(), deps.days);
    } catch (err) {
      deps.logger.warn("certificate expiry check failed", { err });
    }
  };
  void check();
  const cron = await import("node-cron");
  const task = cron.schedule("0 9 * * *", () => void check());
  return () => {
    void task.stop();
  };
}
