// Small figures for the fault and load tests: they report what they measured, they do not assert timings.

/** The p-th percentile (0–100, nearest rank) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** `n=200 p50=12ms p99=80ms max=95ms`, for a one-line summary. */
export function summarize(ms: readonly number[]): string {
  const f = (v: number) => `${Math.round(v)}ms`;
  return `n=${ms.length} p50=${f(percentile(ms, 50))} p99=${f(percentile(ms, 99))} max=${f(Math.max(...ms))}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fetch that gives up after `ms` (a request hanging through an outage fails the test instead of stalling it). */
export async function timedFetch(
  url: string,
  init: RequestInit = {},
  ms = 15_000,
): Promise<{ status: number; headers: Headers; text: string; ms: number; started: number }> {
  const started = Date.now();
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, ms: Date.now() - started, started };
}
