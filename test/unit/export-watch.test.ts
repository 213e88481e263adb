import { describe, expect, it } from "vitest";
import { runWatch } from "../../src/export/watch.js";

describe("export --watch loop", () => {
  it("exports at start, coalesces changes that arrive mid-export, logs failures and keeps going, stops on abort", async () => {
    const ac = new AbortController();
    const lines: string[] = [];
    let notify: (() => void) | undefined;
    let unsubscribed = false;
    let runs = 0;
    let release: (() => void) | undefined;
    const watching = runWatch({
      async exportOnce() {
        runs++;
        if (runs === 2) {
          await new Promise<void>((r) => {
            release = r;
          });
        }
        if (runs === 3) {
          throw new Error("database unavailable");
        }
        return `export ${runs}`;
      },
      async subscribe(onChange) {
        notify = onChange;
        return async () => {
          unsubscribed = true;
        };
      },
      intervalMs: 3_600_000,
      log: (l) => lines.push(l),
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(1);
    notify?.(); // run 2 starts and blocks
    await new Promise((r) => setTimeout(r, 10));
    notify?.(); // three changes during run 2 …
    notify?.();
    notify?.();
    release?.();
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(3); // … make exactly one more export
    notify?.();
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(4);
    ac.abort();
    await watching;
    notify?.();
    expect(runs).toBe(4);
    expect(unsubscribed).toBe(true);
    expect(lines).toEqual([
      "export 1",
      "export 2",
      "export failed, the folder keeps its last export: database unavailable",
      "export 4",
    ]);
  });
});
