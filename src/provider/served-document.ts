import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { type Fragment, fragmentOf, SECTIONS, type SharedEntry, sharedText } from "../render/fragments.js";
import { type DeploymentInput, deploymentKey, type RenderContext, tlsSection } from "../render/render.js";
import type { RenderWarning } from "../render/types.js";

// The served document, kept up to date deployment by deployment (issue 16). It holds each deployment's serialized
// fragment (src/render/fragments.ts) and cuts every map of the document into blocks; a change re-renders the
// deployments it names, re-joins the blocks their entries sit in, and re-hashes and re-compresses only those.
//
// Blocks are content-defined: a unit (one deployment's run of entries, or one shared entry) starts a new block when
// the hash of its sort key (FNV-1a + fmix32) is 0 modulo BLOCK_EVERY. The cut therefore depends only on which deployments are in
// the document, never on the order changes arrived in, so the same bytes always give the same blocks, the same
// gzip members and the same hash (a full re-render can be compared with the incremental state by hash alone).
//
// Bytes: the concatenation of the pieces (glue like `},"routers":{` and blocks), byte-identical to
// `toJson(renderDynamicConfig(snapshot))` (test/unit/served-document.test.ts checks it after every step).
// Gzip: one gzip member per piece. RFC 1952 §2.2 lets a file hold several members, and Go reads them as one stream:
// compress/gzip `Reader.Multistream` is on by default ("the concatenation of a sequence of gzipped files is treated
// as equivalent to the gzip of the concatenation of the sequence", go/src/compress/gzip/gunzip.go), which is what
// net/http's transparent decompression (transport.go `gzipReader`, via gzip.NewReader) and so Traefik's HTTP
// provider use. Node's zlib gunzip reads every member too.
// Hash: sha256 over the sha256 of each piece (`X-Config-Hash`, README): it changes exactly when a piece's bytes do.

/** On average one block per this many units (deployments): ~64 KB of routers at 500 bytes a deployment. */
export const BLOCK_EVERY = 128;

/**
 * 32-bit FNV-1a over UTF-16 code units, then murmur3's fmix32 finalizer: FNV-1a alone leaves its low bits poorly
 * mixed (keys that differ in a few digits can all share them, so `% BLOCK_EVERY` never hit 0 on 100k ids).
 */
function keyHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Piece {
  buf: Buffer;
  sha: Buffer;
  gz: Buffer | undefined;
}

function pieceOf(text: string): Piece {
  const buf = Buffer.from(text);
  return { buf, sha: createHash("sha256").update(buf).digest(), gz: undefined };
}

function gzOf(p: Piece): Buffer {
  p.gz ??= gzipSync(p.buf);
  return p.gz;
}

/** First index whose key is ≥ `key` (keys sorted by `<`, as Array.prototype.sort and JSON key order). */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/** One map of the document: sorted units, cut into blocks at boundary keys ("" starts the first block). */
class SectionBlocks {
  readonly keys: string[] = [];
  readonly text = new Map<string, string>();
  readonly starts: string[] = [""];
  /** Block start → its piece and whether that piece begins with the comma joining it to the block before. */
  readonly blocks = new Map<string, { piece: Piece; comma: boolean } | undefined>([["", undefined]]);
  private readonly dirty = new Set<string>([""]);

  constructor(private readonly blockEvery: number) {}

  private isBoundary(key: string): boolean {
    return keyHash(key) % this.blockEvery === 0;
  }

  /** Bulk load, units already sorted by key (the cold path). */
  load(units: readonly (readonly [string, string])[]): void {
    for (const [key, text] of units) {
      this.keys.push(key);
      this.text.set(key, text);
      if (this.isBoundary(key)) {
        this.starts.push(key);
        this.blocks.set(key, undefined);
        this.dirty.add(key);
      }
    }
  }

  set(key: string, text: string): void {
    if (text === "") {
      this.remove(key);
      return;
    }
    const had = this.text.has(key);
    if (had && this.text.get(key) === text) {
      return;
    }
    this.text.set(key, text);
    if (had) {
      this.dirty.add(this.startOf(key));
      return;
    }
    this.keys.splice(lowerBound(this.keys, key), 0, key);
    if (this.isBoundary(key)) {
      const at = lowerBound(this.starts, key);
      this.dirty.add(this.starts[at - 1] as string); // the block it cuts in two
      this.starts.splice(at, 0, key);
      this.blocks.set(key, undefined);
      this.dirty.add(key);
    } else {
      this.dirty.add(this.startOf(key));
    }
  }

  private remove(key: string): void {
    if (!this.text.delete(key)) {
      return;
    }
    this.keys.splice(lowerBound(this.keys, key), 1);
    if (this.blocks.has(key)) {
      const at = lowerBound(this.starts, key);
      this.starts.splice(at, 1);
      this.blocks.delete(key);
      this.dirty.delete(key);
      this.dirty.add(this.starts[at - 1] as string); // the block before takes its units
    } else {
      this.dirty.add(this.startOf(key));
    }
  }

  private startOf(key: string): string {
    return this.starts[lowerBound(this.starts, `${key}\u0000`) - 1] as string; // the last start ≤ key
  }

  get empty(): boolean {
    return this.keys.length === 0;
  }

  /** Re-joins the dirty blocks and appends every non-empty block to `out`, in order. */
  collect(out: Piece[]): void {
    // Only the first block can be empty; every later block starts with a comma unless it is the first with units.
    const firstHasUnits = this.keys.length > 0 && (this.starts.length === 1 || this.keys[0] !== this.starts[1]);
    for (let i = 0; i < this.starts.length; i++) {
      const start = this.starts[i] as string;
      const comma = i > 1 || (i === 1 && firstHasUnits);
      let block = this.blocks.get(start);
      if (block === undefined || block.comma !== comma || this.dirty.has(start)) {
        const from = lowerBound(this.keys, start);
        const to = i + 1 < this.starts.length ? lowerBound(this.keys, this.starts[i + 1] as string) : this.keys.length;
        const parts: string[] = [];
        for (let k = from; k < to; k++) {
          parts.push(this.text.get(this.keys[k] as string) as string);
        }
        block = { piece: pieceOf((comma ? "," : "") + parts.join(",")), comma };
        this.blocks.set(start, block);
      }
      if (block.piece.buf.length > 0) {
        out.push(block.piece);
      }
    }
    this.dirty.clear();
  }
}

/** What the document looks like now: bytes, gzip and hash ready to serve. */
export interface ServedDocument {
  /** Hex sha256 over the pieces' sha256 (see above). */
  readonly hash: string;
  readonly bytes: number;
  /** The JSON served (identity), joined on first use: serving it needs only `chunks`. */
  json(): Buffer;
  /** The JSON as the pieces it is kept in (no copy): what the provider endpoint writes. */
  chunks(): readonly Buffer[];
  /** The same bytes as gzip members, built on first use (only changed blocks are compressed again). */
  gzip(): Buffer;
  readonly routes: number;
  readonly routers: number;
  readonly services: number;
  readonly hasSecrets: boolean;
  readonly warnings: RenderWarning[];
}

/** One deployment's fragment before and after a change (undefined: not in the document). */
export interface FragmentChange {
  readonly id: string;
  readonly before: Fragment | undefined;
  readonly after: Fragment | undefined;
}

/** A shared entry that came or went with a change. */
export interface SharedChange {
  readonly section: (typeof SECTIONS)[number];
  readonly name: string;
  readonly before: string | undefined;
  readonly after: string | undefined;
}

export interface DocumentChange {
  readonly deployments: readonly FragmentChange[];
  readonly shared: readonly SharedChange[];
}

/**
 * The document's state: every deployment's fragment and the blocks they are joined into. `build` starts from a full
 * snapshot; `apply` re-renders the deployments a change names. Not pure (it caches), but deterministic: the state
 * after any sequence of changes serves the bytes a full render of the same rows gives.
 */
export class DocumentState {
  private readonly frags = new Map<string, Fragment>();
  private readonly sections: SectionBlocks[];
  private readonly shared = SECTIONS.map(() => new Map<string, { json: string; count: number }>());
  private readonly glue = new Map<string, Piece>();
  private readonly warned = new Set<string>();
  private routes = 0;
  private routers = 0;
  private services = 0;
  private secrets = 0;
  /** Two deployments rendered one shared name differently: only the reference render knows which wins. */
  conflict = false;
  private readonly tlsJson: string | undefined;

  /** `blockEvery`: one block per this many units on average (tests cut small blocks to exercise the cuts). */
  constructor(
    private readonly ctx: RenderContext,
    blockEvery = BLOCK_EVERY,
  ) {
    this.sections = SECTIONS.map(() => new SectionBlocks(blockEvery));
    this.tlsJson = ctx.certs.length > 0 ? JSON.stringify(tlsSection(ctx.certs)) : undefined;
  }

  get size(): number {
    return this.frags.size;
  }

  /** The cold path: renders every deployment (sorted by deploymentsOf) and loads the blocks in one pass. */
  static build(ctx: RenderContext, deployments: readonly DeploymentInput[], blockEvery = BLOCK_EVERY): DocumentState {
    const doc = new DocumentState(ctx, blockEvery);
    const units = SECTIONS.map((): [string, string][] => []);
    for (const dep of deployments) {
      const f = fragmentOf(dep, deploymentKey(dep.id), ctx);
      doc.frags.set(dep.id, f);
      doc.count(f, 1);
      for (let s = 0; s < SECTIONS.length; s++) {
        const own = f.own[s] as string;
        if (own !== "") {
          (units[s] as [string, string][]).push([f.key, own]);
        }
        for (const entry of f.shared[s] as readonly SharedEntry[]) {
          doc.addShared(s, entry, false);
        }
      }
    }
    for (let s = 0; s < SECTIONS.length; s++) {
      const list = units[s] as [string, string][];
      // deploymentsOf gives deployments in key order; shared names are merged in at their place.
      for (const [name, e] of doc.shared[s] as Map<string, { json: string }>) {
        list.push([name, sharedText([name, e.json])]);
      }
      if ((doc.shared[s] as Map<string, unknown>).size > 0) {
        list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      }
      (doc.sections[s] as SectionBlocks).load(list);
    }
    return doc;
  }

  /**
   * Re-renders the deployments in `ids`: those with an entry in `inputs` get their new fragment, the others leave
   * the document. Returns what changed (for the revision summary and the guard).
   */
  apply(ids: Iterable<string>, inputs: readonly DeploymentInput[]): DocumentChange {
    const byId = new Map(inputs.map((d) => [d.id, d]));
    const deployments: FragmentChange[] = [];
    const shared: SharedChange[] = [];
    for (const id of new Set(ids)) {
      const before = this.frags.get(id);
      const input = byId.get(id);
      const after = input ? fragmentOf(input, before?.key ?? deploymentKey(id), this.ctx) : undefined;
      if (before) {
        this.count(before, -1);
        this.frags.delete(id);
      }
      if (after) {
        this.count(after, 1);
        this.frags.set(id, after);
      }
      for (let s = 0; s < SECTIONS.length; s++) {
        const own = after?.own[s] ?? "";
        const key = after?.key ?? before?.key ?? deploymentKey(id);
        if (own !== (before?.own[s] ?? "")) {
          (this.sections[s] as SectionBlocks).set(key, own);
        }
        const was = new Map(before?.shared[s] ?? []);
        for (const entry of after?.shared[s] ?? []) {
          if (was.get(entry[0]) === entry[1]) {
            was.delete(entry[0]);
            continue;
          }
          if (this.addShared(s, entry, true)) {
            shared.push({
              section: SECTIONS[s] as SharedChange["section"],
              name: entry[0],
              before: undefined,
              after: entry[1],
            });
          }
        }
        for (const [name, json] of was) {
          if (this.dropShared(s, name)) {
            shared.push({ section: SECTIONS[s] as SharedChange["section"], name, before: json, after: undefined });
          }
        }
      }
      if (before !== undefined || after !== undefined) {
        deployments.push({ id, before, after });
      }
    }
    return { deployments, shared };
  }

  /** Adds one reference to a shared entry; true when it is new to the document (then placed, unless bulk loading). */
  private addShared(s: number, [name, json]: SharedEntry, place: boolean): boolean {
    const m = this.shared[s] as Map<string, { json: string; count: number }>;
    const e = m.get(name);
    if (e) {
      e.count++;
      this.conflict ||= e.json !== json;
      return false;
    }
    m.set(name, { json, count: 1 });
    if (place) {
      (this.sections[s] as SectionBlocks).set(name, sharedText([name, json]));
    }
    return true;
  }

  /** Drops one reference; true when the entry left the document. */
  private dropShared(s: number, name: string): boolean {
    const m = this.shared[s] as Map<string, { json: string; count: number }>;
    const e = m.get(name);
    if (!e) {
      return false;
    }
    if (--e.count > 0) {
      return false;
    }
    m.delete(name);
    (this.sections[s] as SectionBlocks).set(name, "");
    return true;
  }

  private count(f: Fragment, sign: 1 | -1): void {
    this.routes += sign * f.routes;
    this.routers += sign * f.routerNames.length;
    this.services += sign * f.serviceCount;
    this.secrets += f.hasSecrets ? sign : 0;
    if (f.warnings.length > 0) {
      if (sign > 0) {
        this.warned.add(f.id);
      } else {
        this.warned.delete(f.id);
      }
    }
  }

  /** Ids of the deployments in the document. */
  ids(): IterableIterator<string> {
    return this.frags.keys();
  }

  /** The fragment of a deployment in the document. */
  fragment(id: string): Fragment | undefined {
    return this.frags.get(id);
  }

  /** Joins what changed since the last call; cheap when little did. */
  assemble(): ServedDocument {
    const pieces: Piece[] = [];
    if (this.routes === 0) {
      // Nothing to route: `{}` (render.ts: an empty `routers` map would make Traefik reject the whole document).
      pieces.push(this.gluePiece("{}\n"));
    } else {
      let glue = '{"http":{';
      let first = true;
      for (let s = 0; s < SECTIONS.length; s++) {
        const sec = this.sections[s] as SectionBlocks;
        if (sec.empty) {
          continue;
        }
        glue += `${first ? "" : "},"}"${SECTIONS[s]}":{`;
        first = false;
        pieces.push(this.gluePiece(glue));
        sec.collect(pieces);
        glue = "";
      }
      pieces.push(this.gluePiece(`}}${this.tlsJson === undefined ? "" : `,"tls":${this.tlsJson}`}}\n`));
    }
    const hash = createHash("sha256");
    let bytes = 0;
    for (const p of pieces) {
      hash.update(p.sha);
      bytes += p.buf.length;
    }
    let json: Buffer | undefined;
    let gz: Buffer | undefined;
    const hasRoutes = this.routes > 0;
    return {
      hash: hash.digest("hex"),
      bytes,
      json: () => {
        json ??= Buffer.concat(
          pieces.map((p) => p.buf),
          bytes,
        );
        return json;
      },
      chunks: () => pieces.map((p) => p.buf),
      gzip: () => {
        gz ??= Buffer.concat(pieces.map(gzOf));
        return gz;
      },
      routes: this.routes,
      routers: this.routers,
      services: this.services,
      hasSecrets: hasRoutes && (this.ctx.certs.length > 0 || this.secrets > 0),
      warnings: this.warnings(),
    };
  }

  private gluePiece(text: string): Piece {
    let p = this.glue.get(text);
    if (!p) {
      p = pieceOf(text);
      this.glue.set(text, p);
    }
    return p;
  }

  /** Every warning, ordered as render.ts orders them (certificates first, then by deployment, then sorted). */
  private warnings(): RenderWarning[] {
    const out: RenderWarning[] = [...this.ctx.certWarnings];
    const warned = [...this.warned].map((id) => this.frags.get(id) as Fragment);
    warned.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const f of warned) {
      out.push(...f.warnings);
    }
    out.sort((a, b) => (a.kind + a.id < b.kind + b.id ? -1 : a.kind + a.id > b.kind + b.id ? 1 : 0));
    return out;
  }
}
