import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/lib/logger.js";
import { MAX_NODE_LABELS, Metrics, methodLabel, OTHER_NODE } from "../../src/lib/metrics.js";
import { withRequestContext } from "../../src/lib/request-context.js";

const SECRET = "sk_live_0123456789abcdef0123456789";

function capture(level: Parameters<typeof createLogger>[0] = "debug", format: "json" | "pretty" = "json") {
  const lines: string[] = [];
  return { lines, log: createLogger(level, (l) => lines.push(l), format) };
}

describe("the logger", () => {
  it("writes one JSON object per line: level by name, ISO time, the message as msg, the fields", () => {
    const { lines, log } = capture("info");
    log.debug("hidden");
    log.info("config rendered", { revision: 3 });
    log.error("boom", { code: "X" });
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true);
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toEqual({
      level: "info",
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      revision: 3,
      msg: "config rendered",
    });
    expect(second).toMatchObject({ level: "error", code: "X", msg: "boom" });
  });

  it("stamps the requestId of the request being handled on every line, across awaits and timers", async () => {
    const { lines, log } = capture();
    log.info("before");
    await withRequestContext({ requestId: "req_abc" }, async () => {
      log.info("in the handler");
      await new Promise((r) => setTimeout(r, 1));
      log.warn("after an await");
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          log.debug("in a timer the handler started");
          resolve();
        }, 1),
      );
    });
    log.info("after");
    const ids = lines.map((l) => (JSON.parse(l) as { requestId?: string }).requestId);
    expect(ids).toEqual([undefined, "req_abc", "req_abc", "req_abc", undefined]);
  });

  it("masks secrets in messages, fields and errors, in both formats", () => {
    for (const format of ["json", "pretty"] as const) {
      const { lines, log } = capture("debug", format);
      const err = new Error(`connect postgres://app:${SECRET}@db:5432/x failed`);
      log.warn(`token=${SECRET} at postgres://u:${SECRET}@h/db`, { authorization: `Bearer ${SECRET}`, err });
      const out = lines.join("");
      expect(out).toContain("at postgres://u:***@h/db");
      expect(out).not.toContain(SECRET.slice(8));
      expect(out).toContain("[redacted]");
    }
  });

  it("prints pretty lines for a human with LOG_FORMAT=pretty", () => {
    const { lines, log } = capture("info", "pretty");
    log.info("listening", { url: "http://127.0.0.1:8080" });
    expect(lines.join("")).toMatch(/INFO.*listening/);
    expect(lines.join("")).toContain("http://127.0.0.1:8080");
    expect(() => JSON.parse(lines[0] ?? "")).toThrow();
  });
});

describe("metric labels", () => {
  it("gives the first MAX_NODE_LABELS Traefik nodes their own label and folds the rest into other", () => {
    const m = new Metrics();
    const labels = Array.from({ length: MAX_NODE_LABELS + 20 }, (_, i) => m.nodeLabel(`node-${i}`));
    expect(new Set(labels).size).toBe(MAX_NODE_LABELS + 1);
    expect(labels.slice(MAX_NODE_LABELS)).toEqual(Array(20).fill(OTHER_NODE));
    expect(m.nodeLabel("node-0")).toBe("node-0"); // a known node keeps its label
  });

  it("names the usual methods and folds any other into other", () => {
    expect(["GET", "PUT", "DELETE", "PROPFIND", "get"].map(methodLabel)).toEqual([
      "GET",
      "PUT",
      "DELETE",
      "other",
      "other",
    ]);
  });
});
