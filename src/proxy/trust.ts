import { createHash, timingSafeEqual } from "node:crypto";
import { type BlockList, isIP, isIPv4 } from "node:net";
import { cidrBlockList } from "../render/address.js";
import { checkCidr } from "../render/validate.js";

/**
 * A constant-time check of the shared secret. Both sides are hashed first, so the comparison never depends
 * on where the strings differ nor leaks the secret's length.
 */
export function secretMatcher(secret: string): (provided: string) => boolean {
  const expected = createHash("sha256").update(secret).digest();
  return (provided) => timingSafeEqual(createHash("sha256").update(provided).digest(), expected);
}

/** Builds the allow-list of peers that may send the routing header; throws on an invalid entry. */
export function trustedPeers(entries: readonly string[]): BlockList {
  for (const entry of entries) {
    const reason = checkCidr(entry);
    if (reason) {
      throw new Error(`invalid trusted CIDR ${reason}`);
    }
  }
  return cidrBlockList(entries);
}

/** Whether a socket's peer address is on the list; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) counts as IPv4. */
export function isTrustedPeer(list: BlockList, address: string | undefined): boolean {
  if (!address) {
    return false;
  }
  if (address.startsWith("::ffff:") && isIPv4(address.slice(7))) {
    return list.check(address.slice(7), "ipv4");
  }
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6");
}

export { checkCidr };

/** Whose X-Forwarded-* the proxy keeps when FALLBACK_TRUSTED_CIDRS is unset: a Traefik on the same host. */
export const LOOPBACK_PEERS: readonly string[] = ["127.0.0.1", "::1"];
