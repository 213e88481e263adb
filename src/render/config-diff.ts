import { createHash } from "node:crypto";
import type { TraefikDocument } from "./types.js";

/** One changed leaf (or whole array) of an entry; `path` like `rule` or `loadBalancer.servers[0].url`. */
export interface FieldChange {
  path: string;
  before?: unknown;
  after?: unknown;
}

export type DiffSection =
  | "routers"
  | "services"
  | "middlewares"
  | "serversTransports"
  | "tls.certificates"
  | "tls.options"
  | "tls.stores";

export interface EntryChange {
  section: DiffSection;
  name: string;
  change: "added" | "removed" | "changed";
  fields: FieldChange[];
}

export interface ConfigDiff {
  changes: EntryChange[];
  summary: {
    added: number;
    removed: number;
    changed: number;
    /** Every section, always present (empty lists when untouched), names sorted. */
    byKind: Record<string, { added: string[]; removed: string[]; changed: string[] }>;
  };
}

export const DIFF_SECTIONS: readonly DiffSection[] = [
  "routers",
  "services",
  "middlewares",
  "serversTransports",
  "tls.certificates",
  "tls.options",
  "tls.stores",
];

/** What a secret value reads as in a diff: never the value, only whether it changed. */
export const SECRET = "(secret)";
export const SECRET_CHANGED = "(secret, changed)";

type Entries = Record<string, unknown>;

/**
 * The structured difference between two served configs: every router, service, middleware, servers transport and
 * TLS entry added, removed or changed, with field paths and before → after. Pure; the order is deterministic
 * (section order, then name, then path). Private keys, basic-auth hashes and upstream request header values (the
 * fallback proxy's secret, API keys) never appear: they read as "(secret)" / "(secret, changed)".
 */
export function diffConfigs(before: TraefikDocument, after: TraefikDocument): ConfigDiff {
  const changes: EntryChange[] = [];
  const byKind: ConfigDiff["summary"]["byKind"] = {};
  const counts = { added: 0, removed: 0, changed: 0 };
  for (const section of DIFF_SECTIONS) {
    const kind = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
    byKind[section] = kind;
    const a = entriesOf(before, section);
    const b = entriesOf(after, section);
    for (const name of sortedUnion(Object.keys(a), Object.keys(b))) {
      const change = diffEntry(section, name, entry(a, name), entry(b, name));
      if (change) {
        changes.push(change);
        kind[change.change].push(name);
        counts[change.change]++;
      }
    }
  }
  return { changes, summary: { ...counts, byKind } };
}

function diffEntry(section: DiffSection, name: string, a: unknown, b: unknown): EntryChange | undefined {
  if (a === undefined) {
    const fields = leaves(b, "").map(([path, v]) => ({ path, after: redact(path, v, SECRET) }));
    return { section, name, change: "added", fields };
  }
  if (b === undefined) {
    const fields = leaves(a, "").map(([path, v]) => ({ path, before: redact(path, v, SECRET) }));
    return { section, name, change: "removed", fields };
  }
  if (deepEqual(a, b)) {
    return undefined; // the common case (one route changed among 100k): no key sorting, no path strings
  }
  const fields: FieldChange[] = [];
  compareValues(a, b, "", fields);
  return fields.length === 0 ? undefined : { section, name, change: "changed", fields };
}

/** Named entries of one section (the config's own map, not a copy); TLS certificates are named by their SHA-256. */
function entriesOf(doc: TraefikDocument, section: DiffSection): Entries {
  const root = doc as Record<string, unknown>;
  if (section === "tls.certificates") {
    const out: Entries = {};
    const list = asRecord(root.tls)?.certificates;
    if (Array.isArray(list)) {
      list.forEach((c, i) => {
        let name = certificateName(asRecord(c)?.certFile, i);
        while (Object.hasOwn(out, name)) {
          name = `${name}#${i}`; // the same certificate listed twice: keep both visible
        }
        out[name] = c;
      });
    }
    return out;
  }
  const [top, key] = section.startsWith("tls.") ? ["tls", section.slice(4)] : ["http", section];
  return asRecord(asRecord(root[top])?.[key]) ?? {};
}

const entry = (entries: Entries, name: string): unknown => (Object.hasOwn(entries, name) ? entries[name] : undefined);

const isSorted = (xs: readonly string[]) => xs.every((x, i) => i === 0 || compare(xs[i - 1] ?? "", x) < 0);

/**
 * The names of both sides in order. Rendered configs list names sorted (canonical by construction), so two sorted
 * lists are merged in linear time; anything else is sorted (at 100k routes a sort was most of the diff's time).
 */
function sortedUnion(a: readonly string[], b: readonly string[]): string[] {
  if (!isSorted(a) || !isSorted(b)) {
    return [...new Set([...a, ...b])].sort(compare);
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x < y)) {
      out.push(x as string);
      i++;
    } else if (x === undefined || y < x) {
      out.push(y);
      j++;
    } else {
      out.push(x);
      i++;
      j++;
    }
  }
  return out;
}

/** `sha256:<hex>` of the first PEM block's DER (what `openssl x509 -fingerprint -sha256` hashes), else `#index`. */
function certificateName(certFile: unknown, index: number): string {
  if (typeof certFile === "string") {
    const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(certFile);
    if (m?.[1]) {
      const der = Buffer.from(m[1].replace(/\s+/g, ""), "base64");
      return `sha256:${createHash("sha256").update(der).digest("hex")}`;
    }
  }
  return `#${index}`;
}

/**
 * Objects recurse by key; arrays of the same length recurse by index (a changed server URL reads as
 * `servers[1].url`), arrays of different lengths change as a whole (an index-wise diff of a shifted list is noise).
 */
function compareValues(a: unknown, b: unknown, path: string, out: FieldChange[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(compare);
    for (const k of keys) {
      compareValues(a[k], b[k], join(path, k), out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length && !isBasicAuthUsers(path)) {
    a.forEach((v, i) => {
      compareValues(v, b[i], `${path}[${i}]`, out);
    });
    return;
  }
  if (sameJson(a, b)) {
    return;
  }
  if (isBasicAuthUsers(path) && Array.isArray(a) && Array.isArray(b)) {
    out.push({ path, before: redactUsers(a, b), after: redactUsers(b, a) });
    return;
  }
  const change: FieldChange = { path };
  if (a !== undefined) {
    change.before = redact(path, a, SECRET_CHANGED);
  }
  if (b !== undefined) {
    change.after = redact(path, b, SECRET_CHANGED);
  }
  out.push(change);
}

/** Leaf values of a whole entry (added or removed), arrays kept whole. */
function leaves(value: unknown, path: string): [string, unknown][] {
  if (isPlainObject(value)) {
    return Object.keys(value)
      .sort(compare)
      .flatMap((k) => leaves(value[k], join(path, k)));
  }
  return value === undefined ? [] : [[path, value]];
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function join(path: string, key: string): string {
  const step = IDENT.test(key) ? key : `[${JSON.stringify(key)}]`;
  return path === "" || step.startsWith("[") ? `${path}${step}` : `${path}.${step}`;
}

/**
 * The config with the same values redacted as in a diff ("(secret)"): what an admin answer may show of a config
 * that only the provider token may read whole (private keys, basic-auth hashes, upstream request header values).
 */
export function redactConfig<T extends TraefikDocument>(config: T): T {
  return redact("", config, SECRET, true) as T;
}

/**
 * In a shown config a basic-auth line keeps a well-formed bcrypt hash (Traefik would reject anything else) that
 * says what it is and matches no password.
 */
const REDACTED_BCRYPT = `$2y$10$${"REDACTED".repeat(7).slice(0, 53)}`;

const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Secret-bearing places: private keys anywhere, request header values sent upstream, basic-auth users. */
function redact(path: string, value: unknown, mark: string, shown = false): unknown {
  if (typeof value === "string") {
    return PRIVATE_KEY.test(value) || /(^|\.)customRequestHeaders(\.|\[|$)/.test(path) ? mark : value;
  }
  if (isBasicAuthUsers(path) && Array.isArray(value)) {
    return shown ? value.map((u) => `${String(u).split(":")[0]}:${REDACTED_BCRYPT}`) : redactUsers(value, []);
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => redact(`${path}[${i}]`, v, mark, shown));
  }
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort(compare)) {
      out[k] = redact(join(path, k), value[k], mark, shown);
    }
    return out;
  }
  return value;
}

function isBasicAuthUsers(path: string): boolean {
  return /(^|\.)basicAuth\.users$/.test(path);
}

/** `user:hash` lines as `user:(secret)`, or `user:(secret, changed)` when `other` lacks the same line. */
function redactUsers(users: readonly unknown[], other: readonly unknown[]): string[] {
  return users.map((u) => {
    const line = String(u);
    const colon = line.indexOf(":");
    const user = colon < 0 ? "" : line.slice(0, colon);
    return `${user}:${other.includes(u) || other.length === 0 ? SECRET : SECRET_CHANGED}`;
  });
}

/** Structural equality of JSON values, allocation-free (key order ignored, as in compareValues). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) {
    return false;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) {
      return false;
    }
    for (let i = 0; i < a.length; i++) {
      if (!deepEqual(a[i], b[i])) {
        return false;
      }
    }
    return true;
  }
  if (Array.isArray(b)) {
    return false;
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let n = 0;
  for (const k in ra) {
    if (!Object.hasOwn(rb, k) || !deepEqual(ra[k], rb[k])) {
      return false;
    }
    n++;
  }
  for (const _ in rb) {
    n--;
  }
  return n === 0;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return isPlainObject(v) ? v : undefined;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
