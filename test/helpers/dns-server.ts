import { createSocket } from "node:dgram";
import { afterAll, beforeAll } from "vitest";

// A tiny authoritative DNS server on 127.0.0.1 (UDP) answering TXT queries from a map, so the real resolver path
// (node:dns Resolver → c-ares → UDP) is exercised without the network. Only what a TXT lookup needs of RFC 1035:
// one question, no compression in queries, answers pointing back at the question's name (0xC00C).

const TYPE_TXT = 16;
const CLASS_IN = 1;
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

type Entry = { kind: "txt"; records: string[][] } | { kind: "fail"; rcode: number };

export interface DnsServer {
  /** The UDP port on 127.0.0.1. */
  readonly port: number;
  /** `host:port` for DOMAIN_VERIFICATION_DNS / systemTxtResolver. */
  readonly address: string;
  /** Sets a name's TXT records: a string (split into 255-byte strings if longer) or its strings given one by one. */
  setTxt(name: string, records: (string | string[])[]): void;
  /** Makes a name answer with an error code instead. */
  fail(name: string, rcode: "SERVFAIL" | "REFUSED"): void;
  /** Forgets a name: it is NXDOMAIN again. */
  remove(name: string): void;
  /** Names asked, in order (lower-case). */
  readonly queries: string[];
  close(): Promise<void>;
}

/** The `<len><bytes>` strings of one TXT record (ASCII: a long one is cut every 255 characters). */
function chunksOf(record: string | string[]): string[] {
  if (Array.isArray(record)) {
    return record;
  }
  const out: string[] = [];
  for (let i = 0; i < record.length || i === 0; i += 255) {
    out.push(record.slice(i, i + 255));
  }
  return out;
}

interface Query {
  id: number;
  flags: number;
  name: string;
  type: number;
  /** The question section as received (echoed in the answer). */
  question: Buffer;
}

/** Parses a query's header and single question; undefined for anything else. */
export function parseQuery(msg: Buffer): Query | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) {
    return undefined;
  }
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > 63) {
      return undefined; // truncated, or a compression pointer (never in a query)
    }
    at++;
    if (len === 0) {
      break;
    }
    labels.push(msg.subarray(at, at + len).toString("latin1"));
    at += len;
  }
  if (at + 4 > msg.length) {
    return undefined;
  }
  return {
    id: msg.readUInt16BE(0),
    flags: msg.readUInt16BE(2),
    name: labels.join(".").toLowerCase(),
    type: msg.readUInt16BE(at),
    question: msg.subarray(12, at + 4),
  };
}

/** The answer to `q`: its records (TXT) or an error code. */
export function encodeAnswer(q: Query, rcode: number, txt: string[][]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR=1, the query's opcode and RD, AA=1, RA=0.
  header.writeUInt16BE(0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(txt.length, 6);
  const answers = txt.map((chunks) => {
    const rdata = Buffer.concat(
      chunks.map((c) => {
        const b = Buffer.from(c, "utf8");
        return Buffer.concat([Buffer.from([b.length]), b]);
      }),
    );
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(TYPE_TXT, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(0, 6); // TTL 0: nothing cached between a test's steps
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, q.question, ...answers]);
}

/** Starts the server on 127.0.0.1 (a free port). Unknown names are NXDOMAIN; other types than TXT get no answers. */
export async function startDnsServer(): Promise<DnsServer> {
  const names = new Map<string, Entry>();
  const queries: string[] = [];
  const socket = createSocket("udp4");
  socket.on("message", (msg, peer) => {
    const q = parseQuery(msg);
    if (!q) {
      return;
    }
    queries.push(q.name);
    const entry = names.get(q.name);
    let reply: Buffer;
    if (!entry) {
      reply = encodeAnswer(q, RCODE.NXDOMAIN, []);
    } else if (entry.kind === "fail") {
      reply = encodeAnswer(q, entry.rcode, []);
    } else {
      reply = encodeAnswer(q, RCODE.NOERROR, q.type === TYPE_TXT ? entry.records : []);
    }
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => resolve());
  });
  const port = socket.address().port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    setTxt(name, records) {
      names.set(name.toLowerCase(), { kind: "txt", records: records.map(chunksOf) });
    },
    fail(name, rcode) {
      names.set(name.toLowerCase(), { kind: "fail", rcode: RCODE[rcode] });
    },
    remove(name) {
      names.delete(name.toLowerCase());
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * Registers beforeAll/afterAll in the calling `describe`: a DNS server for its tests. Call it before useApiServer
 * and `onStart` runs before the server starts (to put the address in its env).
 */
export function useDnsServer(onStart?: (dns: DnsServer) => void): { readonly server: DnsServer } {
  let server: DnsServer | undefined;
  beforeAll(async () => {
    server = await startDnsServer();
    onStart?.(server);
  });
  afterAll(() => server?.close());
  return {
    get server() {
      if (!server) {
        throw new Error("useDnsServer: not started yet (use it in hooks and tests)");
      }
      return server;
    },
  };
}
