import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { renderDynamicConfig } from "../render/render.js";
import { type ConfigFormat, toJson, toYaml } from "../render/serialize.js";
import type { RenderSettings, RenderWarning, ReplicaInput, RouteInput, TlsCertificateInput } from "../render/types.js";

const gzip = promisify(gzipCb);

/** How long a reader (a poll, the stats) waits for a pending re-render before it gets the config in memory. */
export const FRESH_WAIT_MS = 2000;

export interface Snapshot {
  routes: RouteInput[];
  replicas: ReplicaInput[];
  certificates?: TlsCertificateInput[];
  certificateFailures?: { id: string; reason: string }[];
  middlewares?: Map<string, unknown>;
}

/** One rendered config, immutable. `hash` identifies the bytes across instances; `revision` counts changes here. */
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
}

export interface ConfigCacheDeps {
  load: () => Promise<Snapshot>;
  settings: RenderSettings;
  clock: Clock;
  logger: Logger;
  coalesceMs: number;
}

/**
 * Holds the last good rendered config and rebuilds it only when told that routing or health changed
 * (never per poll). Invalidations within `coalesceMs` share one render. On a failed load it keeps the last
 * good config and reports itself stale.
 */
export class ConfigCache {
  private cur: RenderedConfig | undefined;
  private gen = 1; // bumped by invalidate()
  private renderedGen = 0;
  private failedGen = -1;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private variants = new Map<string, Promise<Buffer>>();
  private staleSince: Date | undefined;
  lastError: string | undefined;

  constructor(private readonly deps: ConfigCacheDeps) {}

  current(): RenderedConfig | undefined {
    return this.cur;
  }

  /** True while the database could not be read since the last successful render. */
  get stale(): boolean {
    return this.staleSince !== undefined;
  }

  /** Marks the config out of date and schedules one coalesced re-render. */
  invalidate(): void {
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
    let snapshot: Snapshot;
    try {
      snapshot = await this.deps.load();
    } catch (err) {
      this.failedGen = gen;
      this.markStale("database unavailable");
      this.deps.logger.error("config load failed; serving last good config", { err, hasConfig: !!this.cur });
      return;
    }
    const started = performance.now();
    const { config, warnings, hasSecrets } = renderDynamicConfig({
      routes: snapshot.routes,
      replicas: snapshot.replicas,
      certificates: snapshot.certificates ?? [],
      middlewares: snapshot.middlewares ?? new Map(),
      settings: this.deps.settings,
    });
    for (const f of snapshot.certificateFailures ?? []) {
      warnings.push({ kind: "certificate", id: f.id, reason: f.reason });
    }
    const json = Buffer.from(toJson(config));
    const renderMs = performance.now() - started;
    const hash = createHash("sha256").update(json).digest("hex");
    this.renderedGen = gen;
    this.staleSince = undefined;
    this.lastError = undefined;
    if (this.cur?.hash === hash) {
      return; // same bytes: Traefik must not see a change
    }
    for (const w of warnings) {
      // A `middleware` warning renders the row with a setting ignored; every other kind leaves the row out.
      const msg = w.kind === "middleware" ? "setting ignored in rendered config" : "row skipped in rendered config";
      this.deps.logger.warn(msg, { kind: w.kind, id: w.id, reason: w.reason });
    }
    this.cur = {
      revision: (this.cur?.revision ?? 0) + 1,
      hash,
      json,
      renderedAt: this.deps.clock.now(),
      renderMs,
      routeCount: snapshot.routes.length - warnings.filter((w) => w.kind === "route").length,
      serviceCount: Object.keys(config.http?.services ?? {}).length,
      hasSecrets,
      warnings,
    };
    this.variants.clear();
    this.deps.logger.info("config rendered", {
      revision: this.cur.revision,
      hash: hash.slice(0, 12),
      bytes: json.length,
      routes: this.cur.routeCount,
      renderMs: Math.round(renderMs),
    });
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
    const plain = format === "json" ? cfg.json : Buffer.from(toYaml(JSON.parse(cfg.json.toString("utf8"))));
    return gzipped ? gzip(plain) : plain;
  }

  close(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
  }
}
