import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import { diffConfigs } from "../render/config-diff.js";
import { SECTIONS } from "../render/fragments.js";
import { type DeploymentInput, deploymentsOf, renderContext } from "../render/render.js";
import { type ConfigFormat, toYaml } from "../render/serialize.js";
import type {
  RenderSettings,
  RenderWarning,
  ReplicaInput,
  RouteInput,
  TlsCertificateInput,
  TraefikDocument,
} from "../render/types.js";
import { type GuardDecision, type GuardLimits, guardDecision, guardOnRemoved } from "./guard.js";
import {
  type Cause,
  type FreezeState,
  mergeCause,
  type RevisionLedger,
  revisionSummary,
  type StoredConfig,
} from "./revisions.js";
import { type DocumentChange, DocumentState, type ServedDocument } from "./served-document.js";

const gzip = promisify(gzipCb);

/**
 * What a change touched, as far as the one reporting it knows: some deployments (their rows are re-read and only
 * they re-rendered), `control` (nothing rendered moved: a freeze, a confirmation — what is served is decided
 * again), or `all` (certificates, a whole-state apply, anything unknown: everything is read again).
 */
export type ChangeScope = { deployments: readonly string[] } | "control" | "all";

/** How long a notification may trail the commit a full read saw before a difference counts as a mismatch. */
const MISMATCH_GRACE_MS = 1000;

/** Beyond this many changed deployments one full read is cheaper than the `IN (…)` lists. */
const MAX_INCREMENTAL_IDS = 2000;

/** How long a reader (a poll, the stats) waits for a pending re-render before it gets the config in memory. */
export const FRESH_WAIT_MS = 2000;

export interface Snapshot {
  routes: RouteInput[];
  replicas: ReplicaInput[];
  certificates?: TlsCertificateInput[];
  certificateFailures?: { id: string; reason: string }[];
  middlewares?: Map<string, unknown>;
  traffic?: Map<string, unknown>;
}

/**
 * One served config, immutable. `hash` identifies the bytes; `revision` is the durable number every instance
 * shares (without a ledger: a count of changes in this process).
 */
export interface RenderedConfig {
  revision: number;
  /** The document's hash (src/provider/served-document.ts: sha256 over its blocks' sha256), `X-Config-Hash`. */
  hash: string;
  /** The JSON bytes; for a rendered config joined on first use. */
  readonly json: Buffer;
  /** Length of `json` (without joining it). */
  bytes: number;
  /** The same bytes gzipped (gzip members, one per block), when the renderer kept them. */
  gzipped?: () => Buffer;
  /** The JSON bytes as the pieces the renderer keeps (no copy), when it kept them. */
  chunks?: () => readonly Buffer[];
  renderedAt: Date;
  renderMs: number;
  routeCount: number;
  serviceCount: number;
  /** The body holds secrets (private keys): the endpoint then always requires the provider token. */
  hasSecrets: boolean;
  warnings: RenderWarning[];
  /** Set while a freeze pins this revision (`X-Config-Frozen`). */
  frozen?: number;
}

export interface ConfigCacheDeps {
  /** Everything the renderer needs (startup, `all` changes, the periodic full reload). */
  load: () => Promise<Snapshot>;
  /** The rows of some deployments only; without it every change reads everything. */
  loadDeployments?: (ids: readonly string[]) => Promise<DeploymentInput[]>;
  /** RENDER_FULL_RELOAD_SECONDS × 1000: how often a full read checks the incremental state (0: never). */
  fullReloadMs?: number;
  settings: RenderSettings;
  clock: Clock;
  logger: Logger;
  /** Counts renders (ok, failed) and their duration; the served config's gauges are read on scrape. */
  metrics?: Metrics;
  coalesceMs: number;
  /** Durable revisions, freeze and guard state in the database; without it revisions count renders here. */
  ledger?: RevisionLedger;
  guard?: GuardLimits;
}

/** The guard's hold on a rendered config that removes too many routers. */
export interface HeldState {
  revision: number;
  hash: string;
  decision: GuardDecision;
  since: Date;
}

/** The latest render, whatever is served (under a freeze or a hold it waits). */
export interface LatestRender {
  revision: number;
  hash: string;
  renderedAt: Date;
}

interface Candidate {
  hash: string;
  doc: ServedDocument;
  /** What changed since the document state before this render (absent after a full build). */
  change?: DocumentChange;
  /** Hash and router count of the document state this render started from. */
  before?: { hash: string; routers: number };
  renderMs: number;
  routeCount: number;
  serviceCount: number;
  hasSecrets: boolean;
  warnings: RenderWarning[];
}

const NO_GUARD: GuardLimits = { maxRemovedPercent: 100, minRouters: Number.MAX_SAFE_INTEGER };

/**
 * Holds the config served now and rebuilds it only when told that routing or health changed (never per poll).
 * Invalidations within `coalesceMs` share one render. On a failed load it keeps the last good config and reports
 * itself stale. With a ledger, every render is recorded as a durable revision first; a freeze serves the frozen
 * revision's bytes instead, and the guard keeps the served bytes when a render removes too many routers.
 */
export class ConfigCache {
  private cur: RenderedConfig | undefined;
  /** The revision served last by any instance, read once at startup: the guard's baseline until we serve. */
  private baseline: RenderedConfig | undefined;
  private baselineRead = false;
  private pendingCause: Cause | undefined = { cause: "startup" };
  private frozenCache: RenderedConfig | undefined;
  private gen = 1; // bumped by invalidate()
  private renderedGen = 0;
  private failedGen = -1;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private variants = new Map<string, Promise<Buffer>>();
  private staleSince: Date | undefined;
  /** The document kept deployment by deployment; undefined until the first full read. */
  private doc: DocumentState | undefined;
  /**
   * Deployments a periodic full read found different from the kept document and no change had named: a mismatch,
   * unless a notification for them is still on its way (reported by `reportMismatches` after a grace period).
   */
  private suspects: { ids: Set<string>; at: number } | undefined;
  /** `doc` as last assembled (what the next change starts from). */
  private assembled: ServedDocument | undefined;
  /** Deployments changed since the last render, and whether everything must be read again. */
  private dirty = new Set<string>();
  private needFull = true;
  private lastFullAt = 0;
  private certificateFailures: { id: string; reason: string }[] = [];
  /** Parsed documents by hash (the served one and the candidate), for the slow path of guard and summary. */
  private parsed = new Map<string, TraefikDocument>();
  lastError: string | undefined;
  /** The freeze read on the last refresh. */
  freeze: FreezeState | undefined;
  held: HeldState | undefined;
  latest: LatestRender | undefined;

  /** Renders since startup by kind: `full` (every row read) and `incremental` (only the deployments named). */
  readonly renderCounts = { full: 0, incremental: 0 };

  constructor(private readonly deps: ConfigCacheDeps) {}

  /** What the renderer is configured with (the reference render in tests, /routing/resolve). */
  get settings(): RenderSettings {
    return this.deps.settings;
  }

  current(): RenderedConfig | undefined {
    return this.cur;
  }

  /** True while the database could not be read since the last successful render. */
  get stale(): boolean {
    return this.staleSince !== undefined;
  }

  /**
   * Marks the config out of date and schedules one coalesced re-render of what `scope` names; `cause` is recorded
   * on a new revision.
   */
  invalidate(cause: Cause = { cause: "feed" }, scope: ChangeScope = "all"): void {
    this.pendingCause = mergeCause(this.pendingCause, cause);
    if (scope === "all") {
      this.needFull = true;
    } else if (scope !== "control") {
      for (const id of scope.deployments) {
        this.dirty.add(id);
        this.suspects?.ids.delete(id); // announced after all: its notification was still on its way
      }
    }
    this.gen++;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.ensureFresh();
      }, this.deps.coalesceMs);
      this.timer.unref();
    }
  }

  markStale(reason: string): void {
    this.staleSince ??= this.deps.clock.now();
    this.lastError = reason;
  }

  /** Renders if something changed since the last render (and that change has not already failed to load). */
  async ensureFresh(): Promise<RenderedConfig | undefined> {
    while (this.renderedGen !== this.gen && this.failedGen !== this.gen) {
      this.inflight ??= this.refresh().finally(() => {
        this.inflight = undefined;
      });
      await this.inflight;
    }
    return this.cur;
  }

  /**
   * Like ensureFresh, but waits at most `maxWaitMs`: a poll must not hang on a slow database while a good
   * config sits in memory (Traefik would time out and back off).
   */
  async freshWithin(maxWaitMs: number): Promise<RenderedConfig | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), maxWaitMs);
    });
    try {
      return (await Promise.race([this.ensureFresh(), waited])) ?? this.cur;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Whether the periodic full reload is due (it also runs whenever a change says `all`); the change feed's poll asks,
   * and invalidates when it is.
   */
  fullReloadDue(): boolean {
    const every = this.deps.fullReloadMs ?? 0;
    return every > 0 && this.deps.clock.now().getTime() - this.lastFullAt >= every;
  }

  private async refresh(): Promise<void> {
    const gen = this.gen;
    const cause = this.pendingCause ?? { cause: "feed" };
    this.pendingCause = undefined;
    const dirty = this.dirty;
    const periodic = !this.needFull && this.doc !== undefined && this.fullReloadDue();
    const full =
      this.needFull ||
      this.doc === undefined ||
      !this.deps.loadDeployments ||
      periodic ||
      dirty.size > MAX_INCREMENTAL_IDS;
    this.dirty = new Set();
    this.needFull = false;
    const failed = (reason: string, message: string, err: unknown) => {
      this.pendingCause = mergeCause(cause, this.pendingCause ?? cause); // the retry is still about this cause
      for (const id of dirty) {
        this.dirty.add(id); // nothing is lost: the retry reads them again
      }
      this.needFull ||= full;
      this.failedGen = gen;
      this.markStale(reason);
      this.deps.metrics?.renders.inc({ result: "failed" });
      this.deps.logger.error(message, { err, hasConfig: !!this.cur });
    };
    let snapshot: Snapshot | undefined;
    let rows: DeploymentInput[] | undefined;
    let freeze: FreezeState | undefined;
    const loadStarted = this.deps.clock.now().getTime();
    try {
      if (full) {
        snapshot = await this.deps.load();
      } else if (dirty.size > 0 && this.deps.loadDeployments) {
        rows = await this.deps.loadDeployments([...dirty]);
      }
      freeze = await this.readControl();
    } catch (err) {
      failed("database unavailable", "config load failed; serving last good config", err);
      return;
    }
    const candidate = snapshot
      ? this.renderFull(snapshot, periodic ? dirty : undefined, loadStarted)
      : this.renderChanged(dirty, rows ?? []);
    if (candidate === undefined) {
      // Two deployments rendered one shared entry differently: only a full render knows the answer.
      this.needFull = true;
      this.gen++;
      return;
    }
    try {
      await this.decide(candidate, freeze, cause);
    } catch (err) {
      // The number must be durable: rather than serve bytes under a number no other instance knows, keep the last
      // good config (stale) and record again on the next refresh.
      failed("revision not recorded", "config revision could not be recorded; serving last good config", err);
      return;
    }
    this.deps.metrics?.renders.inc({ result: "ok" });
    this.renderedGen = gen;
    this.staleSince = undefined;
    this.lastError = undefined;
  }

  /**
   * Reports what a periodic full read found different and no notification named within a second since (a NOTIFY
   * can trail the commit the full read already saw): logged with the deployments, counted. The change feed's poll
   * calls it.
   */
  reportMismatches(): void {
    if (!this.suspects || performance.now() - this.suspects.at < MISMATCH_GRACE_MS) {
      return;
    }
    const ids = [...this.suspects.ids].sort();
    this.suspects = undefined;
    if (ids.length > 0) {
      this.deps.metrics?.renderMismatches.inc();
      this.deps.logger.error("incremental config differed from a full render; the full render is served", {
        deployments: ids.slice(0, 10),
        differing: ids.length,
      });
    }
  }

  /** The freeze (every refresh) and, before this instance serves anything, the baseline. */
  private async readControl(): Promise<FreezeState | undefined> {
    const ledger = this.deps.ledger;
    if (!ledger) {
      return undefined;
    }
    const freeze = await ledger.freeze();
    if (!this.baselineRead) {
      const last = await ledger.lastServed();
      this.baseline = last && fromStored(last, undefined);
      this.baselineRead = true;
    }
    return freeze;
  }

  /**
   * Rebuilds the whole document from a full read. On a periodic check (`announced`: the deployments changes had
   * named but the kept document had not applied yet) it compares the result with the kept one.
   */
  private renderFull(snapshot: Snapshot, announced: ReadonlySet<string> | undefined, loadStarted: number): Candidate {
    const started = performance.now();
    const ctx = renderContext(this.deps.settings, snapshot.certificates ?? []);
    const next = DocumentState.build(
      ctx,
      deploymentsOf({
        routes: snapshot.routes,
        replicas: snapshot.replicas,
        middlewares: snapshot.middlewares ?? new Map(),
        traffic: snapshot.traffic ?? new Map(),
        settings: this.deps.settings,
      }),
    );
    const doc = next.assemble();
    const prev = this.doc;
    const before = prev?.assemble();
    if (announced && prev && before && before.hash !== doc.hash) {
      // Announced changes the kept document had not applied yet, and those announced while the full read ran, are
      // no mismatch: only a deployment that differs and was never named is one.
      const differing = differingDeployments(prev, next).filter((id) => !announced.has(id) && !this.dirty.has(id));
      if (differing.length > 0) {
        this.suspects = { ids: new Set(differing), at: performance.now() };
      }
    }
    this.doc = next;
    this.assembled = doc;
    this.lastFullAt = loadStarted;
    this.renderCounts.full++;
    this.certificateFailures = snapshot.certificateFailures ?? [];
    return this.candidate(doc, started, undefined, undefined);
  }

  /** Re-renders only the deployments a change named; undefined when only a full render can decide. */
  private renderChanged(ids: ReadonlySet<string>, rows: readonly DeploymentInput[]): Candidate | undefined {
    const started = performance.now();
    const state = this.doc as DocumentState;
    const prev = this.assembled ?? state.assemble();
    const change = ids.size > 0 ? state.apply(ids, rows) : undefined;
    if (state.conflict) {
      this.doc = undefined;
      this.assembled = undefined;
      return undefined;
    }
    const doc = change ? state.assemble() : prev;
    this.assembled = doc;
    this.renderCounts.incremental++;
    return this.candidate(doc, started, change, { hash: prev.hash, routers: prev.routers });
  }

  private candidate(
    doc: ServedDocument,
    started: number,
    change: DocumentChange | undefined,
    before: Candidate["before"],
  ): Candidate {
    const warnings = [...doc.warnings];
    for (const f of this.certificateFailures) {
      warnings.push({ kind: "certificate", id: f.id, reason: f.reason });
    }
    const renderMs = performance.now() - started;
    this.deps.metrics?.renderDuration.observe(renderMs / 1000);
    return {
      hash: doc.hash,
      doc,
      ...(change ? { change } : {}),
      ...(before ? { before } : {}),
      renderMs,
      routeCount: doc.routes,
      serviceCount: doc.services,
      hasSecrets: doc.hasSecrets,
      warnings,
    };
  }

  /** A parsed document (slow path of the guard and the summary: the served bytes are not the last render's). */
  private parsedDoc(hash: string, json: () => Buffer): TraefikDocument {
    let d = this.parsed.get(hash);
    if (!d) {
      d = JSON.parse(json().toString("utf8")) as TraefikDocument;
      if (this.parsed.size >= 2) {
        this.parsed.clear();
      }
      this.parsed.set(hash, d);
    }
    return d;
  }

  /**
   * The guard's decision and the revision summary. When what is served is the document this render started from
   * (the common case), both come from the changed deployments alone; otherwise (a restart's baseline, a freeze, a
   * hold) from the whole documents.
   */
  private judge(c: Candidate, served: RenderedConfig | undefined) {
    const limits = this.deps.guard ?? NO_GUARD;
    if (served && c.before && served.hash === c.before.hash) {
      const { before, after } = partialDocs(c.change);
      const removed: string[] = [];
      for (const d of c.change?.deployments ?? []) {
        const kept = new Set(d.after?.routerNames ?? []);
        for (const n of d.before?.routerNames ?? []) {
          if (!kept.has(n)) {
            removed.push(n);
          }
        }
      }
      return {
        decision: guardOnRemoved(c.before.routers, removed, limits, false),
        summary: () => revisionSummary(diffConfigs(before, after)),
      };
    }
    const servedDoc = served ? this.parsedDoc(served.hash, () => served.json) : undefined;
    const candidateDoc = () => this.parsedDoc(c.hash, () => c.doc.json());
    return {
      decision: guardDecision(servedDoc, candidateDoc(), limits, false),
      summary: () => revisionSummary(diffConfigs(servedDoc ?? {}, candidateDoc())),
    };
  }

  /** Records the candidate, then serves it, the frozen revision, or (the guard holds it) what is served now. */
  private async decide(c: Candidate, freeze: FreezeState | undefined, cause: Cause): Promise<void> {
    const ledger = this.deps.ledger;
    if (!ledger) {
      if (this.cur?.hash !== c.hash) {
        this.serveRendered(c, (this.cur?.revision ?? 0) + 1);
      }
      return;
    }
    const served = this.cur ?? this.baseline;
    const { decision, summary } = this.judge(c, served);
    // Under a freeze nothing new is served, so nothing is held yet: the guard looks again once it is lifted.
    const trips = !freeze && served?.hash !== c.hash && decision.hold;
    const rec = await ledger.record({
      hash: c.hash,
      json: c.doc.json,
      bytes: c.doc.bytes,
      gzipped: c.doc.gzip,
      cause,
      held: trips,
      servedRevision: served?.revision,
      summary,
    });
    this.latest = { revision: rec.revision, hash: c.hash, renderedAt: this.deps.clock.now() };
    this.freeze = freeze;
    if (freeze) {
      this.held = undefined;
      const frozen = await this.frozenConfig(ledger, freeze.revision);
      if (frozen) {
        await this.serve(frozen);
        return;
      }
      // Only a hand-deleted row gets here (the API refuses unknown revisions; pruning keeps the frozen one).
      this.deps.logger.error("frozen revision is gone; serving the current state", { revision: freeze.revision });
    }
    if (trips && !rec.confirmed) {
      if (this.held?.revision !== rec.revision) {
        this.deps.logger.warn("config held by the guard: it removes too many routers; confirm it to serve it", {
          revision: rec.revision,
          servedRevision: served?.revision,
          removedRouters: decision.removedRouters.length,
          servedRouters: decision.servedRouters,
          removedPercent: Math.round(decision.removedPercent * 10) / 10,
        });
      }
      this.held = { revision: rec.revision, hash: c.hash, decision, since: this.deps.clock.now() };
      if (served && (!this.cur || this.cur.frozen !== undefined)) {
        // After a restart: what was served before it; after a freeze is lifted: the same bytes, no longer frozen.
        await this.serve(unfrozen(served));
      }
      return;
    }
    this.held = undefined;
    if (this.cur?.hash === c.hash && this.cur.revision === rec.revision && this.cur.frozen === undefined) {
      return; // same bytes: Traefik must not see a change
    }
    this.serveRendered(c, rec.revision);
    await this.markServed(rec.revision);
  }

  private serveRendered(c: Candidate, revision: number): void {
    // Warnings of the deployments that changed (all of them after a full read): not every row at every change.
    const fresh = c.change ? c.change.deployments.flatMap((d) => d.after?.warnings ?? []) : c.warnings;
    for (const w of fresh) {
      // A `middleware` warning renders the row with a setting ignored; every other kind leaves the row out.
      const msg = w.kind === "middleware" ? "setting ignored in rendered config" : "row skipped in rendered config";
      this.deps.logger.warn(msg, { kind: w.kind, id: w.id, reason: w.reason });
    }
    this.cur = renderedConfig({
      revision,
      hash: c.hash,
      doc: c.doc,
      renderedAt: this.deps.clock.now(),
      renderMs: c.renderMs,
      routeCount: c.routeCount,
      serviceCount: c.serviceCount,
      hasSecrets: c.hasSecrets,
      warnings: c.warnings,
    });
    this.baseline = undefined;
    this.variants.clear();
    this.deps.logger.info("config rendered", {
      revision,
      hash: c.hash.slice(0, 12),
      bytes: c.doc.bytes,
      routes: c.routeCount,
      deployments: c.change ? c.change.deployments.length : "all",
      renderMs: Math.round(c.renderMs * 10) / 10,
    });
  }

  /** Serves bytes read back from the ledger (a frozen revision, or the baseline a hold keeps). */
  private async serve(cfg: RenderedConfig): Promise<void> {
    if (this.cur?.revision === cfg.revision && this.cur.frozen === cfg.frozen) {
      return;
    }
    const changed = this.cur?.revision !== cfg.revision;
    this.cur = cfg;
    this.baseline = undefined;
    this.variants.clear();
    this.deps.logger.info(cfg.frozen === undefined ? "config served" : "frozen config served", {
      revision: cfg.revision,
      hash: cfg.hash.slice(0, 12),
    });
    if (changed) {
      await this.markServed(cfg.revision);
    }
  }

  private async markServed(revision: number): Promise<void> {
    try {
      await this.deps.ledger?.served(revision);
    } catch (err) {
      // Bookkeeping only (the restart baseline); serving the bytes matters more.
      this.deps.logger.warn("could not stamp the served revision", { revision, err });
    }
  }

  private async frozenConfig(ledger: RevisionLedger, revision: number) {
    if (this.frozenCache?.revision !== revision) {
      const stored = await ledger.load(revision);
      this.frozenCache = stored && fromStored(stored, revision);
    }
    return this.frozenCache;
  }

  /**
   * Bytes of the current config in a format, optionally gzipped; computed once per revision. Plain JSON of a rendered
   * config comes as its pieces: at 100k deployments, joining 45 MB on every change only to write it out again costs
   * more than the change itself.
   */
  async body(cfg: RenderedConfig, format: ConfigFormat, gzipped: boolean): Promise<Buffer | readonly Buffer[]> {
    if (format === "json" && !gzipped) {
      return cfg.chunks ? cfg.chunks() : cfg.json;
    }
    if (format === "json" && cfg.gzipped) {
      return cfg.gzipped(); // kept per block: only the blocks a change touched were compressed again
    }
    const key = `${cfg.hash}:${format}:${gzipped}`;
    let v = this.variants.get(key);
    if (!v) {
      v = this.build(cfg, format, gzipped);
      this.variants.set(key, v);
    }
    return v;
  }

  private async build(cfg: RenderedConfig, format: ConfigFormat, gzipped: boolean): Promise<Buffer> {
    // YAML is derived from the JSON bytes: same key order, and no second copy of the object tree kept around.
    const plain = format === "json" ? cfg.json : yamlOf(cfg.json);
    return gzipped ? gzip(plain) : plain;
  }

  close(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
  }
}

/** A served config from a rendered document: `json` is joined on first use, gzip members are the document's. */
function renderedConfig(
  f: Omit<RenderedConfig, "json" | "bytes" | "gzipped" | "chunks"> & { doc: ServedDocument },
): RenderedConfig {
  const { doc, ...rest } = f;
  return Object.defineProperty({ ...rest, bytes: doc.bytes, gzipped: doc.gzip, chunks: doc.chunks }, "json", {
    get: doc.json,
    enumerable: true,
  }) as RenderedConfig;
}

/** The same served config, no longer marked frozen. */
function unfrozen(cfg: RenderedConfig): RenderedConfig {
  if (cfg.frozen === undefined) {
    return cfg;
  }
  const copy = Object.create(Object.getPrototypeOf(cfg), Object.getOwnPropertyDescriptors(cfg)) as RenderedConfig;
  delete copy.frozen;
  return copy;
}

/** Ids of deployments whose fragments differ between two document states. */
function differingDeployments(a: DocumentState, b: DocumentState): string[] {
  const out: string[] = [];
  for (const id of new Set([...a.ids(), ...b.ids()])) {
    const x = a.fragment(id);
    const y = b.fragment(id);
    if (!x || !y || x.own.some((t, i) => t !== y.own[i])) {
      out.push(id);
    }
  }
  return out.sort();
}

/** The entries a change touched, before and after, as two small documents (for diffConfigs). */
function partialDocs(change: DocumentChange | undefined): { before: TraefikDocument; after: TraefikDocument } {
  const before: Record<string, Record<string, unknown>> = {};
  const after: Record<string, Record<string, unknown>> = {};
  const put = (into: Record<string, Record<string, unknown>>, section: string, entries: Record<string, unknown>) => {
    into[section] = Object.assign(into[section] ?? {}, entries);
  };
  for (const d of change?.deployments ?? []) {
    for (const [i, section] of SECTIONS.entries()) {
      const b = d.before?.own[i] ?? "";
      const a = d.after?.own[i] ?? "";
      if (b === a) {
        continue;
      }
      if (b !== "") {
        put(before, section, JSON.parse(`{${b}}`) as Record<string, unknown>);
      }
      if (a !== "") {
        put(after, section, JSON.parse(`{${a}}`) as Record<string, unknown>);
      }
    }
  }
  for (const s of change?.shared ?? []) {
    if (s.before !== undefined) {
      put(before, s.section, { [s.name]: JSON.parse(s.before) });
    }
    if (s.after !== undefined) {
      put(after, s.section, { [s.name]: JSON.parse(s.after) });
    }
  }
  return {
    before: { http: before } as unknown as TraefikDocument,
    after: { http: after } as unknown as TraefikDocument,
  };
}

/** The YAML served for these JSON bytes (same key order); the revision endpoint serves it the same way. */
export function yamlOf(json: Buffer): Buffer {
  return Buffer.from(toYaml(JSON.parse(json.toString("utf8"))));
}

/** A stored revision as a served config; `hasSecrets` is read from the bytes, as render decides it (render.ts). */
function fromStored(s: StoredConfig, frozen: number | undefined): RenderedConfig {
  const doc = JSON.parse(s.json.toString("utf8")) as TraefikDocument;
  const services = Object.keys(doc.http?.services ?? {}).length;
  return {
    revision: s.revision,
    hash: s.hash,
    json: s.json,
    bytes: s.json.length,
    renderedAt: s.createdAt,
    renderMs: 0,
    routeCount: services,
    serviceCount: services,
    hasSecrets: holdsSecrets(doc),
    warnings: [],
    ...(frozen === undefined ? {} : { frozen }),
  };
}

/** Mirrors render's hasSecrets: private keys, basic-auth hashes, custom header values (the proxy secret). */
function holdsSecrets(doc: TraefikDocument): boolean {
  if ((doc.tls?.certificates ?? []).length > 0) {
    return true;
  }
  return Object.values(doc.http?.middlewares ?? {}).some(
    (m) => !!(m.basicAuth || m.headers?.customRequestHeaders || m.headers?.customResponseHeaders),
  );
}
