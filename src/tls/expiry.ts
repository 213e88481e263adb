import type { Db } from "../db/client.js";
import { type CertificateMeta, listCertificates } from "../db/repo/certificates.js";
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

/** Logs one warning per certificate expiring soon: at start, then daily (node-cron, 09:00 local). */
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
