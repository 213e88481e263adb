import { BlockList, isIP, isIPv4 } from "node:net";

// Which replica addresses may be dialled (issue 10, item 7). The health checker probes a replica's address and
// reports what it found in `last_error`, and the fallback proxy forwards to it: without this policy any API token
// holder could point both at cloud metadata services or scan link-local hosts. Loopback and private ranges stay
// allowed, since replicas live there. Checks are plain arithmetic on the literal: node's BlockList costs ~10 µs a
// call, too slow for render at 100k replicas, so it is used only for the operator's allow-list, on refused
// addresses.

/**
 * Cloud metadata host names, compared lower-case and whole (a name can be refused, never allowed:
 * REPLICA_ALLOWED_CIDRS holds addresses). Their addresses are refused below as well.
 */
export const METADATA_NAMES: ReadonlySet<string> = new Set([
  "metadata", // GCP short name (resolved through the instance's search domain)
  "metadata.google.internal", // GCP
  "metadata.goog", // GCP
  "instance-data", // AWS
  "instance-data.ec2.internal", // AWS
]);

/** A BlockList of entries that passed `checkCidr` (`10.0.0.0/8`, `fd00::/8`, or a single address). */
export function cidrBlockList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf("/");
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const type = isIP(address) === 4 ? "ipv4" : "ipv6";
    if (slash === -1) {
      list.addAddress(address, type);
    } else {
      list.addSubnet(address, Number(entry.slice(slash + 1)), type);
    }
  }
  return list;
}

/** The operator's REPLICA_ALLOWED_CIDRS: refused addresses it covers are accepted after all. */
export type ReplicaAllowList = BlockList;

/** Builds the allow-list from validated CIDR entries (`169.254.10.0/24`, `fe80::1`); undefined when empty. */
export function replicaAllowList(cidrs: readonly string[]): ReplicaAllowList | undefined {
  if (cidrs.length === 0) {
    return undefined;
  }
  return cidrBlockList(cidrs);
}

/** Why an IPv4 address (as octets) may not be a replica, or undefined. */
function ipv4Refusal(a: number, b: number, c: number, d: number): string | undefined {
  if (a === 0) {
    return "an unspecified ('this network', 0.0.0.0/8) address";
  }
  if (a === 169 && b === 254) {
    // AWS/GCP/Azure/OCI instance metadata, and the ECS task metadata endpoint.
    return (c === 169 && d === 254) || (c === 170 && d === 2)
      ? "a cloud metadata address"
      : "a link-local address (169.254.0.0/16)";
  }
  if (a === 100 && b === 100 && c === 100 && d === 200) {
    return "a cloud metadata address"; // Alibaba Cloud
  }
  if (a >= 224 && a <= 239) {
    return "a multicast address (224.0.0.0/4)";
  }
  if (a === 255 && b === 255 && c === 255 && d === 255) {
    return "the broadcast address";
  }
  return undefined;
}

/** Octets of a dotted quad already accepted by `isIPv4`. */
function octets(address: string): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  let i = 0;
  for (let k = 0; k < address.length; k++) {
    const ch = address.charCodeAt(k);
    if (ch === 46 /* . */) {
      i++;
    } else {
      out[i as 0] = out[i as 0] * 10 + (ch - 48);
    }
  }
  return out;
}

/** The eight 16-bit groups of an IPv6 literal already accepted by `isIPv6` (no zone id). */
function groups(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    const [a, b, c, d] = octets(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const gap = text.indexOf("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  if (gap === -1) {
    return parse(text);
  }
  const head = parse(text.slice(0, gap));
  const tail = parse(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Why an IPv6 address may not be a replica, or undefined. IPv4 embedded in it is judged as IPv4. */
function ipv6Refusal(address: string): string | undefined {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = groups(address);
  const high = g0 | g1 | g2 | g3;
  if (high === 0 && g4 === 0 && g5 === 0 && g6 === 0 && g7 <= 1) {
    return g7 === 0 ? "the unspecified address (::)" : undefined; // ::1 is loopback
  }
  if ((g0 & 0xffc0) === 0xfe80) {
    return "a link-local address (fe80::/10)";
  }
  if ((g0 & 0xff00) === 0xff00) {
    return "a multicast address (ff00::/8)";
  }
  if (g0 === 0xfd00 && g1 === 0xec2 && (g2 | g3 | g4 | g5 | g6) === 0 && g7 === 0x254) {
    return "a cloud metadata address"; // AWS IMDS over IPv6
  }
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64
  // (64:ff9b::a.b.c.d, RFC 6052) addresses reach the embedded IPv4 address.
  const embedsIPv4 =
    (high === 0 && ((g4 === 0 && (g5 === 0xffff || g5 === 0)) || (g4 === 0xffff && g5 === 0))) ||
    (g0 === 0x64 && g1 === 0xff9b && (g2 | g3 | g4 | g5) === 0);
  if (embedsIPv4) {
    const reason = ipv4Refusal(g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff);
    return reason ? `${reason.replace(/^(an?|the) /, "an IPv6 form of $1 ")}` : undefined;
  }
  return undefined;
}

/** Cheap pre-check on the first group of an IPv6 literal: only these can start a refused address. */
function ipv6MayBeRefused(address: string): boolean {
  const end = address.indexOf(":");
  const first = end === 0 ? 0 : Number.parseInt(address.slice(0, end), 16);
  // ::/96 (unspecified, IPv4-compatible/-mapped), 64:ff9b:: (NAT64), fd00:ec2::, fe80::/10, ff00::/8.
  return first === 0 || first === 0x64 || first >= 0xfe80 || (first === 0xfd00 && /^fd00:0*ec2:/i.test(address));
}

const refusal = (address: string, reason: string) =>
  `${address} is ${reason}; replicas may not use it unless REPLICA_ALLOWED_CIDRS covers it`;

/** refusedReplicaAddress for a dotted quad already accepted by `isIPv4`. */
export function refusedIPv4(address: string, allowed?: ReplicaAllowList): string | undefined {
  let first = 0;
  for (let i = 0, c = address.charCodeAt(0); c !== 46 /* . */; c = address.charCodeAt(++i)) {
    first = first * 10 + (c - 48);
  }
  if (first !== 0 && first !== 100 && first !== 169 && first < 224) {
    return undefined; // the common case (10.x, 192.168.x, …) without parsing the whole address
  }
  const reason = ipv4Refusal(...octets(address));
  return reason === undefined || allowed?.check(address, "ipv4") ? undefined : refusal(address, reason);
}

/** refusedReplicaAddress for an IPv6 literal already accepted by `isIPv6` (no zone id). */
export function refusedIPv6(address: string, allowed?: ReplicaAllowList): string | undefined {
  if (!ipv6MayBeRefused(address)) {
    return undefined;
  }
  const reason = ipv6Refusal(address);
  return reason === undefined || allowed?.check(address, "ipv6") ? undefined : refusal(address, reason);
}

/** refusedReplicaAddress for a DNS name: cloud metadata names only (what a name resolves to is not known here). */
export function refusedName(name: string): string | undefined {
  return METADATA_NAMES.has(name.toLowerCase())
    ? `${name} is a cloud metadata host name; replicas may not use it (REPLICA_ALLOWED_CIDRS allows addresses, not names)`
    : undefined;
}

/**
 * Why a syntactically valid replica address (IPv4, IPv6 or DNS name, see checkAddressForm) may not be dialled:
 * link-local, cloud metadata, unspecified, multicast or broadcast — unless `allowed` (REPLICA_ALLOWED_CIDRS)
 * covers the address.
 */
export function refusedReplicaAddress(address: string, allowed?: ReplicaAllowList): string | undefined {
  if (address.includes(":")) {
    return refusedIPv6(address, allowed);
  }
  return isIPv4(address) ? refusedIPv4(address, allowed) : refusedName(address);
}
