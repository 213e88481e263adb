import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Metrics } from "../lib/metrics.js";
import { diffConfigs } from "../render/config-diff.js";
import { renderDynamicConfig } from "../render/render.js";
import { type ConfigFormat, toJson, toYaml } from "../render/serialize.js";
import type {
  RenderSettings,
  RenderWarning,
  ReplicaInput,
  RouteInput,
  TlsCertificateInput,
  TraefikDocument,
} from "../render/types.js";
import { type GuardDecision, type GuardLimits, guardDecision } from "./guard.js";
import {
  type Cause,
  type FreezeState,
  mergeCause,
  type RevisionLedger,
  revisionSummary,
  type StoredConfig,
} from "./revisions.js";

const gzip = promisify(gzipCb);

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
  hash: string;
  json: Buffer;
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
  load: () => Promise<Snapshot>;
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
  json: Buffer;
  config: TraefikDocument;
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
  /** The served config as an object: the guard's and the summary's "before". */
  private curDoc: TraefikDocument | undefined;
  /** The revision served last by any instance, read once at startup: the guard's baseline until we serve. */
  private baseline: { cfg: RenderedConfig; doc: TraefikDocument } | undefined;
  private baselineRead = false;
  private pendingCause: Cause | undefined = { cause: "startup" };
  private frozenCache: { cfg: RenderedConfig; doc: TraefikDocument } | undefined;
  private gen = 1; // bumped by invalidate()
  private renderedGen = 0;
  private failedGen = -1;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private variants = new Map<string, Promise<Buffer>>();
  private staleSince: Date | undefined;
  lastError: string | undefined;
  /** The freeze read on the last refresh. */
  freeze: FreezeState | undefined;
  held: HeldState | undefined;
  latest: LatestRender | undefined;

  constructor(private readonly deps: ConfigCacheDeps) {}

  current(): RenderedConfig | undefined {
    return this.cur;
  }

  /** True while the database could not be read since the last successful render. */
  get stale(): boolean {
    return this.staleSince !== undefined;
  }

  /** Marks the config out of date and schedules one coalesced re-render; `cause` is recorded on a new revision. */
  invalidate(cause: Cause = { cause: "feed" }): void {
    this.pendingCause = mergeCause(this.pendingCause, cause);
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

  private async refresh(): Promise<void> {
    const gen = this.gen;
    const cause = this.pendingCause ?? { cause: "feed" };
    this.pendingCause = undefined;
    const failed = (reason: string, message: string, err: unknown) => {
      this.pendingCause = mergeCause(cause, this.pendingCause ?? cause); // the retry is still about this cause
      this.failedGen = gen;
      this.markStale(reason);
      this.deps.metrics?.renders.inc({ result: "failed" });
      this.deps.logger.error(message, { err, hasConfig: !!this.cur });
    };
    let snapshot: Snapshot;
    let freeze: FreezeState | undefined;
    try {
      snapshot = await this.deps.load();
      freeze = await this.readControl();
    } catch (err) {
      failed("database unavailable", "config load failed; serving last good config", err);
      return;
    }
    const candidate = this.render(snapshot);
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

  private render(snapshot: Snapshot): Candidate {
    const started = performance.now();
    const { config, warnings, hasSecrets } = renderDynamicConfig({
      routes: snapshot.routes,
      replicas: snapshot.replicas,
      certificates: snapshot.certificates ?? [],
      middlewares: snapshot.middlewares ?? new Map(),
      traffic: snapshot.traffic ?? new Map(),
      settings: this.deps.settings,
    });
    for (const f of snapshot.certificateFailures ?? []) {
      warnings.push({ kind: "certificate", id: f.id, reason: f.reason });
    }
    const json = Buffer.from(toJson(config));
    const renderMs = performance.now() - started;
    this.deps.metrics?.renderDuration.observe(renderMs / 1000);
    return {
      hash: createHash("sha256").update(json).digest("hex"),
      json,
      config,
      renderMs,
      routeCount: snapshot.routes.length - warnings.filter((w) => w.kind === "route").length,
      serviceCount: Object.keys(config.http?.services ?? {}).length,
      hasSecrets,
      warnings,
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
    const served = this.cur ? { cfg: this.cur, doc: this.curDoc ?? {} } : this.baseline;
    const decision = guardDecision(served?.doc, c.config, this.deps.guard ?? NO_GUARD, false);
    // Under a freeze nothing new is served, so nothing is held yet: the guard looks again once it is lifted.
    const trips = !freeze && served?.cfg.hash !== c.hash && decision.hold;
    const rec = await ledger.record({
      hash: c.hash,
      json: c.json,
      cause,
      held: trips,
      servedRevision: served?.cfg.revision,
      summary: () => revisionSummary(diffConfigs(served?.doc ?? {}, c.config)),
    });
    this.latest = { revision: rec.revision, hash: c.hash, renderedAt: this.deps.clock.now() };
    this.freeze = freeze;
    if (freeze) {
      this.held = undefined;
      const frozen = await this.frozenConfig(ledger, freeze.revision);
      if (frozen) {
        await this.serve(frozen.cfg, frozen.doc);
        return;
      }
      // Only a hand-deleted row gets here (the API refuses unknown revisions; pruning keeps the frozen one).
      this.deps.logger.error("frozen revision is gone; serving the current state", { revision: freeze.revision });
    }
    if (trips && !rec.confirmed) {
      if (this.held?.revision !== rec.revision) {
        this.deps.logger.warn("config held by the guard: it removes too many routers; confirm it to serve it", {
          revision: rec.revision,
          servedRevision: served?.cfg.revision,
          removedRouters: decision.removedRouters.length,
          servedRouters: decision.servedRouters,
          removedPercent: Math.round(decision.removedPercent * 10) / 10,
        });
      }
      this.held = { revision: rec.revision, hash: c.hash, decision, since: this.deps.clock.now() };
      if (served && (!this.cur || this.cur.frozen !== undefined)) {
        // After a restart: what was served before it; after a freeze is lifted: the same bytes, no longer frozen.
        const { frozen: _, ...unfrozen } = served.cfg;
        await this.serve(unfrozen, served.doc);
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
    for (const w of c.warnings) {
      // A `middleware` warning renders the row with a setting ignored; every other kind leaves the row out.
      const msg = w.kind === "middleware" ? "setting ignored in rendered config" : "row skipped in rendered config";
      this.deps.logger.warn(msg, { kind: w.kind, id: w.id, reason: w.reason });
    }
    this.cur = {
      revision,
      hash: c.hash,
      json: c.json,
      renderedAt: this.deps.clock.now(),
      renderMs: c.renderMs,
      routeCount: c.routeCount,
      serviceCount: c.serviceCount,
      hasSecrets: c.hasSecrets,
      warnings: c.warnings,
    };
    this.curDoc = c.config;
    this.baseline = undefined;
    this.variants.clear();
    this.deps.logger.info("config rendered", {
      revision,
      hash: c.hash.slice(0, 12),
      bytes: c.json.length,
      routes: c.routeCount,
      renderMs: Math.round(c.renderMs),
    });
  }

  /** Serves bytes read back from the ledger (a frozen revision, or the baseline a hold keeps). */
  private async serve(cfg: RenderedConfig, doc: TraefikDocument): Promise<void> {
    if (this.cur?.revision === cfg.revision && this.cur.frozen === cfg.frozen) {
      return;
    }
    const changed = this.cur?.revision !== cfg.revision;
    this.cur = cfg;
    this.curDoc = doc;
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
    if (this.frozenCache?.cfg.revision !== revision) {
      const stored = await ledger.load(revision);
      this.frozenCache = stored && fromStored(stored, revision);
    }
    return this.frozenCache;
  }

  /** Bytes of the current config in a format, optionally gzipped; computed once per revision. */
  async body(cfg: RenderedConfig, format: ConfigFormat, gzipped: boolean): Promise<Buffer> {
    if (format === "json" && !gzipped) {
      return cfg.json;
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

/** The YAML served for these JSON bytes (same key order); the revision endpoint serves it the same way. */
export function yamlOf(json: Buffer): Buffer {
  return Buffer.from(toYaml(JSON.parse(json.toString("utf8"))));
}

/** A stored revision as a served config; `hasSecrets` is read from the bytes, as render decides it (render.ts). */
function fromStored(s: StoredConfig, frozen: number | undefined): { cfg: RenderedConfig; doc: TraefikDocument } {
  const doc = JSON.parse(s.json.toString("utf8")) as TraefikDocument;
  const services = Object.keys(doc.http?.services ?? {}).length;
  const cfg: RenderedConfig = {
    revision: s.revision,
    hash: s.hash,
    json: s.json,
    renderedAt: s.createdAt,
    renderMs: 0,
    routeCount: services,
    serviceCount: services,
    hasSecrets: holdsSecrets(doc),
    warnings: [],
    ...(frozen === undefined ? {} : { frozen }),
  };
  return { cfg, doc };
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
