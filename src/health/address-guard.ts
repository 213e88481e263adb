import type { Clock } from "../lib/clock.js";
import type { ReplicaAllowList } from "../render/address.js";
import { checkAddress } from "../render/validate.js";
import type { Probe } from "./probe.js";

/**
 * Wraps a probe so it never dials a replica address the API would refuse (link-local, cloud metadata, numeric
 * aliases, …; issue 10 item 7), e.g. one written into the database by hand. Such a replica fails its check with
 * the reason as `last_error`, without a connection, so the checker reveals nothing about what listens there.
 */
export function refuseDisallowedAddresses(probe: Probe, allowed: ReplicaAllowList | undefined, clock: Clock): Probe {
  return (target) => {
    const reason = checkAddress(target.address, allowed);
    if (reason === undefined) {
      return probe(target);
    }
    return Promise.resolve({ ok: false, at: clock.now(), durationMs: 0, error: `not probed: ${reason}` });
  };
}
