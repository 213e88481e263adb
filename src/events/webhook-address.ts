import { type LookupAddress, lookup as systemLookup } from "node:dns";
import { type BlockList, isIP } from "node:net";
import { cidrBlockList, METADATA_NAMES } from "../render/address.js";

// Where webhooks may be delivered (SSRF). Stricter than the replica policy in src/render/address.ts: replicas live on
// private networks, a webhook receiver is someone's public endpoint, so loopback, private, shared (CGNAT) and
// link-local addresses are refused too unless WEBHOOK_ALLOW_PRIVATE=true (an internal receiver, the tests). Cloud
// metadata, unspecified, multicast and reserved addresses are refused always. A webhook call is rare, so node's
// BlockList (~10 µs a check) is fine here.

interface Range {
  cidr: string;
  reason: string;
  /** Allowed with WEBHOOK_ALLOW_PRIVATE=true. */
  private: boolean;
}

const V4: Range[] = [
  // Metadata first: they sit inside ranges WEBHOOK_ALLOW_PRIVATE would allow.
  { cidr: "169.254.169.254/32", reason: "a cloud metadata address", private: false },
  { cidr: "169.254.170.2/32", reason: "a cloud metadata address", private: false },
  { cidr: "100.100.100.200/32", reason: "a cloud metadata address", private: false },
  { cidr: "0.0.0.0/8", reason: "an unspecified ('this network') address", private: false },
  { cidr: "224.0.0.0/4", reason: "a multicast address", private: false },
  { cidr: "240.0.0.0/4", reason: "a reserved or broadcast address", private: false },
  { cidr: "127.0.0.0/8", reason: "a loopback address", private: true },
  { cidr: "10.0.0.0/8", reason: "a private address (10.0.0.0/8)", private: true },
  { cidr: "172.16.0.0/12", reason: "a private address (172.16.0.0/12)", private: true },
  { cidr: "192.168.0.0/16", reason: "a private address (192.168.0.0/16)", private: true },
  { cidr: "100.64.0.0/10", reason: "a shared (CGNAT) address (100.64.0.0/10)", private: true },
  { cidr: "169.254.0.0/16", reason: "a link-local address (169.254.0.0/16)", private: true },
];

const V6: Range[] = [
  { cidr: "fd00:ec2::254/128", reason: "a cloud metadata address", private: false },
  { cidr: "::/128", reason: "the unspecified address", private: false },
  { cidr: "ff00::/8", reason: "a multicast address", private: false },
  { cidr: "::1/128", reason: "a loopback address", private: true },
  { cidr: "fc00::/7", reason: "a unique local address (fc00::/7)", private: true },
  { cidr: "fe80::/10", reason: "a link-local address (fe80::/10)", private: true },
  { cidr: "fec0::/10", reason: "a site-local address (fec0::/10)", private: true },
];

/** IPv6 prefixes (/96) that carry an IPv4 address: mapped, translated, compatible, NAT64 (RFC 6052). */
const EMBEDDING = ["::ffff:", "::ffff:0:", "::", "64:ff9b::"];

function embedded(r: Range): Range[] {
  const [address = "", bits = "32"] = r.cidr.split("/");
  const [a = 0, b = 0, c = 0, d = 0] = address.split(".").map(Number);
  const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  return EMBEDDING.map((prefix) => ({
    cidr: `${prefix}${hex}/${96 + Number(bits)}`,
    reason: r.reason.replace(/^(an?|the) /, "an IPv6 form of $1 "),
    private: r.private,
  }));
}

const RANGES: { list: BlockList; family: "ipv4" | "ipv6"; range: Range }[] = [
  ...V4.map((range) => ({ list: cidrBlockList([range.cidr]), family: "ipv4" as const, range })),
  ...V6.map((range) => ({ list: cidrBlockList([range.cidr]), family: "ipv6" as const, range })),
  ...V4.flatMap(embedded).map((range) => ({ list: cidrBlockList([range.cidr]), family: "ipv6" as const, range })),
];

export const ALLOW_PRIVATE_HINT = "set WEBHOOK_ALLOW_PRIVATE=true to allow it";

/** Why a webhook may not connect to this IP address, or undefined. */
export function refusedWebhookAddress(ip: string, allowPrivate: boolean): string | undefined {
  const family = isIP(ip) === 4 ? "ipv4" : "ipv6";
  for (const { list, family: f, range } of RANGES) {
    if (f === family && list.check(ip, family)) {
      if (range.private && allowPrivate) {
        return undefined;
      }
      return `${ip} is ${range.reason}${range.private ? `; ${ALLOW_PRIVATE_HINT}` : ""}`;
    }
  }
  return undefined;
}

export type Resolver = (host: string) => Promise<LookupAddress[]>;

/** Every address the system resolver gives for a name (as connecting would). */
export const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) => {
    systemLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

/** The host of a URL as a name or a bare IP literal (IPv6 without brackets). */
export const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1");

/**
 * Why a webhook URL may not be delivered to now, or undefined: its host is a metadata name, or it (or any address
 * its name resolves to) is refused. Every address must pass, so a name cannot mix a public and a private one.
 */
export async function refusedWebhookUrl(
  url: URL,
  allowPrivate: boolean,
  resolve: Resolver = systemResolver,
): Promise<string | undefined> {
  const host = hostOf(url);
  if (isIP(host)) {
    return refusedWebhookAddress(host, allowPrivate);
  }
  if (METADATA_NAMES.has(host.toLowerCase().replace(/\.$/, ""))) {
    return `${host} is a cloud metadata host name`;
  }
  let addresses: LookupAddress[];
  try {
    addresses = await resolve(host);
  } catch {
    return `${host} does not resolve`;
  }
  if (addresses.length === 0) {
    return `${host} does not resolve`;
  }
  for (const a of addresses) {
    const reason = refusedWebhookAddress(a.address, allowPrivate);
    if (reason) {
      return `${host} resolves to ${reason}`;
    }
  }
  return undefined;
}

/** The error a refused address fails a connection with (recorded as the delivery's error). */
export class RefusedAddress extends Error {
  readonly code = "EWEBHOOKADDRESS";
  constructor(reason: string) {
    super(`refused: ${reason}`);
    this.name = "RefusedAddress";
  }
}

type LookupCallback = (err: Error | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net.connect (undici's `connect` options): resolves the name once, refuses it when any address is
 * refused, and hands the connection exactly the addresses it checked, so DNS changing between the check and the
 * connect (rebinding) cannot lead it elsewhere.
 */
export function guardedLookup(allowPrivate: boolean, resolve: Resolver = systemResolver) {
  return (host: string, options: { all?: boolean; family?: number | string }, callback: LookupCallback) => {
    resolve(host).then(
      (found) => {
        const family = options.family === 4 || options.family === "IPv4" ? 4 : options.family === 6 ? 6 : 0;
        const addresses = family === 0 ? found : found.filter((a) => a.family === family);
        const refused = addresses.map((a) => refusedWebhookAddress(a.address, allowPrivate)).find((r) => r);
        const reason =
          addresses.length === 0
            ? `${host} does not resolve`
            : refused === undefined
              ? undefined
              : `${host} resolves to ${refused}`;
        if (reason !== undefined) {
          callback(new RefusedAddress(reason), options.all ? [] : "");
        } else if (options.all) {
          callback(null, addresses);
        } else {
          const [first] = addresses;
          callback(null, first?.address ?? "", first?.family);
        }
      },
      (err: Error) => callback(err, options.all ? [] : ""),
    );
  };
}
