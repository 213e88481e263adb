import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

// Every metric the service exports, in one place (README "Monitoring" lists them). One registry per app, never
// prom-client's global one: tests run many servers in one process. Label sets are bounded: route templates, never
// paths; a fixed method list; Traefik node names capped at MAX_NODE_LABELS (the rest fold into "other").

/** Distinct Traefik node names given their own label; later ones are counted under `node="other"`. */
export const MAX_NODE_LABELS = 100;
/** Certificates given an expiry series (the soonest to expire first). */
export const MAX_CERTIFICATE_LABELS = 1000;
/** The `node` label of every name past the cap. */
export const OTHER_NODE = "other";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Replica health as the stats count it (`not_running`: registered but not running). */
const HEALTH = ["healthy", "unhealthy", "unknown", "not_running"] as const;
const FAST = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SLOW = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What is served now (read on scrape); `served` is unset before the first successful render. */
export interface ConfigGauges {
  stale: boolean;
  served: { revision: number; bytes: number; skippedRows: number } | undefined;
}

/** One Traefik node's last poll (read on scrape). */
export interface PollerGauges {
  node: string;
  lastPollAt: Date;
  /** It got the config served now. */
  current: boolean;
}

/** Read on scrape; the wiring sets them once the parts exist. The database ones are one query each. */
export interface MetricSources {
  now: () => Date;
  config: () => ConfigGauges | undefined;
  pollers: () => PollerGauges[];
  replicasByHealth: () => Promise<Record<string, number>>;
  certificates: () => Promise<{ id: string; notAfter: Date }[]>;
}

let processRegistry: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, event loop lag, GC), collected once per process: their collectors
 * install process-wide observers that cannot be removed, so one set per app would pile up in tests.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The `method` label: the usual methods by name, anything else as `other`. */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : "other";
}

/** The service's metrics: counters and histograms updated where things happen, gauges read on scrape. */
export class Metrics {
  readonly registry = new Registry();
  private sources: Partial<MetricSources> = {};
  private readonly nodes = new Set<string>();

  readonly renders = this.counter("obiente_render_total", "Config renders, by result (ok, failed)", ["result"]);
  readonly renderDuration = this.histogram("obiente_render_duration_seconds", "Time to render and serialize", FAST);
  readonly renderMismatches = this.counter(
    "obiente_render_incremental_mismatch_total",
    "Periodic full reloads whose document differed from the incrementally kept one (the full one is served)",
    [],
  );
  readonly polls = this.counter("obiente_traefik_polls_total", "Polls of /traefik/config, by Traefik node", ["node"]);
  readonly httpRequests = this.counter("obiente_http_requests_total", "API requests by method, route and status", [
    "method",
    "route",
    "status",
  ]);
  readonly httpDuration = this.histogram(
    "obiente_http_request_duration_seconds",
    "API request latency by method and route",
    FAST,
    ["method", "route"],
  );
  readonly probes = this.counter("obiente_health_probes_total", "Active health probes, by result (ok, failed)", [
    "result",
  ]);
  readonly probeDuration = this.histogram("obiente_health_probe_duration_seconds", "Active health probe latency", SLOW);
  readonly proxyRequests = this.counter(
    "obiente_proxy_requests_total",
    "Fallback proxy requests, by outcome (proxied, interrupted, or the problem code answered)",
    ["outcome"],
  );
  readonly proxyUpstreamErrors = this.counter(
    "obiente_proxy_upstream_errors_total",
    "Failed requests to a replica, by kind (connect, timeout, closed, handshake, unsendable, invalid, mid_response)",
    ["kind"],
  );
  readonly proxyDuration = this.histogram(
    "obiente_proxy_request_duration_seconds",
    "Fallback proxy request duration, until the response is sent",
    SLOW,
  );
  readonly proxyRetries = this.counter("obiente_proxy_retries_total", "Requests retried on a second replica", []);

  constructor() {
    // Known label values start at 0, so a rate() or an alert sees the series before its first event.
    for (const result of ["ok", "failed"]) {
      this.renders.inc({ result }, 0);
      this.probes.inc({ result }, 0);
    }
    this.renderMismatches.inc(0);
    const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void | Promise<void>) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          return collect(this);
        },
      });
    type Served = NonNullable<ConfigGauges["served"]>;
    const servedGauge = (name: string, help: string, pick: (s: Served) => number) =>
      gauge(name, help, [], (g) => {
        const served = this.sources.config?.()?.served;
        if (served) {
          g.set(pick(served));
        }
      });
    servedGauge("obiente_config_revision", "Revision of the config served now", (s) => s.revision);
    servedGauge("obiente_config_bytes", "Size of the config served now (JSON bytes)", (s) => s.bytes);
    servedGauge("obiente_render_skipped_rows", "Rows left out of the config served now", (s) => s.skippedRows);
    gauge("obiente_config_stale", "1 while the database cannot be read (the last good config is served)", [], (g) => {
      const c = this.sources.config?.();
      if (c) {
        g.set(c.stale ? 1 : 0);
      }
    });
    gauge("obiente_traefik_last_poll_age_seconds", "Seconds since each Traefik node last polled", ["node"], (g) =>
      this.collectPollers(g, (p, now) => (now - p.lastPollAt.getTime()) / 1000, Math.min),
    );
    gauge("obiente_traefik_poller_current", "1 when the node's last poll got the config served now", ["node"], (g) =>
      this.collectPollers(g, (p) => (p.current ? 1 : 0), Math.min),
    );
    gauge("obiente_replicas", "Registered replicas, by health", ["health"], async (g) => {
      const counts = await this.sources.replicasByHealth?.().catch(() => undefined); // keep the last values
      if (counts) {
        for (const h of HEALTH) {
          g.set({ health: h }, counts[h] ?? 0);
        }
      }
    });
    gauge(
      "obiente_certificate_expiry_seconds",
      "Seconds until each uploaded certificate expires (negative: expired)",
      ["certificate_id"],
      async (g) => {
        const certs = await this.sources.certificates?.().catch(() => undefined);
        if (!certs) {
          return;
        }
        const now = this.now();
        g.reset(); // a deleted certificate's series goes away
        const soonest = [...certs].sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime());
        for (const c of soonest.slice(0, MAX_CERTIFICATE_LABELS)) {
          g.set({ certificate_id: c.id }, Math.round((c.notAfter.getTime() - now) / 1000));
        }
      },
    );
  }

  /** Sets (or replaces) what the scrape-time gauges read. */
  observe(sources: Partial<MetricSources>): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** The `node` label of a Traefik node: its name while fewer than MAX_NODE_LABELS are known, else `other`. */
  nodeLabel(node: string): string {
    if (this.nodes.has(node)) {
      return node;
    }
    if (this.nodes.size >= MAX_NODE_LABELS || node === OTHER_NODE) {
      return OTHER_NODE;
    }
    this.nodes.add(node);
    return node;
  }

  /** Counts one poll by a Traefik node. */
  poll(node: string): void {
    this.polls.inc({ node: this.nodeLabel(node) });
  }

  /** Prometheus text exposition of this app's metrics and the process's. */
  async text(): Promise<string> {
    return Registry.merge([this.registry, processMetrics()]).metrics();
  }

  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;

  private now(): number {
    return (this.sources.now?.() ?? new Date()).getTime();
  }

  /** One series per labelled node; the nodes folded into `other` share one, combined with `fold`. */
  private collectPollers(g: Gauge, value: (p: PollerGauges, now: number) => number, fold: typeof Math.min): void {
    const pollers = this.sources.pollers?.();
    if (!pollers) {
      return;
    }
    const now = this.now();
    const byLabel = new Map<string, number>();
    for (const p of pollers) {
      const label = this.nodeLabel(p.node);
      const v = value(p, now);
      const prev = byLabel.get(label);
      byLabel.set(label, prev === undefined ? v : fold(prev, v));
    }
    g.reset();
    for (const [node, v] of byLabel) {
      g.set({ node }, v);
    }
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(
    name: string,
    help: string,
    buckets: number[],
    labelNames: L[] = [],
  ): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}
