import { describe, expect, it } from "vitest";
import { CbExpressionError, cbExpressionError, parseCbExpression } from "../../src/render/cb-expression.js";

// The semantics checker beside the repository encodes Traefik v3.7.9's (oxy v2.1.0) grammar independently: every
// expression we accept must pass it, and every one it rejects we must reject too.
const SEMANTICS_URL = new URL("../../../shared/traefik/semantics/semantics.mjs", import.meta.url);
const { checkOxyExpression } = (await import(SEMANTICS_URL.href)) as {
  checkOxyExpression(src: string, kind: "cb"): string | undefined;
};

/** The column an expression is rejected at, and the reason. */
function rejection(src: string): { column: number; reason: string } {
  try {
    parseCbExpression(src);
  } catch (err) {
    if (err instanceof CbExpressionError) {
      return { column: err.column, reason: err.reason };
    }
    throw err;
  }
  throw new Error(`accepted: ${src}`);
}

describe("circuit-breaker expressions Traefik accepts", () => {
  const valid: [string, string][] = [
    ["NetworkErrorRatio() > 0.5", "NetworkErrorRatio() > 0.5"],
    ["ResponseCodeRatio(500, 600, 0, 600) > 0.25", "ResponseCodeRatio(500, 600, 0, 600) > 0.25"],
    ["LatencyAtQuantileMS(50.0) > 100", "LatencyAtQuantileMS(50.0) > 100"],
    ["LatencyAtQuantileMS(99.9)>=250", "LatencyAtQuantileMS(99.9) >= 250"],
    [
      "NetworkErrorRatio()>0.5||LatencyAtQuantileMS(50.0)>100",
      "NetworkErrorRatio() > 0.5 || LatencyAtQuantileMS(50.0) > 100",
    ],
    [
      "NetworkErrorRatio() > 0.3 && ResponseCodeRatio(500,600,0,600) > 0.25",
      "NetworkErrorRatio() > 0.3 && ResponseCodeRatio(500, 600, 0, 600) > 0.25",
    ],
    [
      "(NetworkErrorRatio() > 0.3 || LatencyAtQuantileMS(50.0) > 100) && ResponseCodeRatio(500, 600, 0, 600) != 0.0",
      "(NetworkErrorRatio() > 0.3 || LatencyAtQuantileMS(50.0) > 100) && ResponseCodeRatio(500, 600, 0, 600) != 0.0",
    ],
    // Redundant parentheses go; && binds tighter than ||, as in Go.
    ["((NetworkErrorRatio() > 0.5))", "NetworkErrorRatio() > 0.5"],
    [
      "NetworkErrorRatio() > 0.5 || (LatencyAtQuantileMS(50.0) > 100 && NetworkErrorRatio() > 0.1)",
      "NetworkErrorRatio() > 0.5 || LatencyAtQuantileMS(50.0) > 100 && NetworkErrorRatio() > 0.1",
    ],
    ["\tNetworkErrorRatio()  <=  0.9 ", "NetworkErrorRatio() <= 0.9"],
    ["NetworkErrorRatio() == 1.", "NetworkErrorRatio() == 1.0"],
    ["NetworkErrorRatio() < .5", "NetworkErrorRatio() < 0.5"],
    ["LatencyAtQuantileMS(5e1) > 0", "LatencyAtQuantileMS(50.0) > 0"],
  ];
  it.each(valid)("accepts %s as %s, and so does the semantics check", (src, normal) => {
    expect(cbExpressionError(src)).toBeUndefined();
    expect(parseCbExpression(src)).toBe(normal);
    expect(checkOxyExpression(src, "cb")).toBeUndefined();
    expect(checkOxyExpression(normal, "cb")).toBeUndefined();
    expect(parseCbExpression(normal)).toBe(normal); // the normal form is a fixed point
  });
});

describe("circuit-breaker expressions rejected with the column of the error", () => {
  const invalid: [string, string, number, RegExp][] = [
    ["a shell command", "rm -rf /", 1, /unknown name rm/],
    ["an unclosed parenthesis", "(NetworkErrorRatio() > 0.5", 1, /unbalanced parentheses: this '\(' is never closed/],
    [
      "an extra closing parenthesis",
      "NetworkErrorRatio() > 0.5)",
      26,
      /unbalanced parentheses: this '\)' closes nothing/,
    ],
    ["an unclosed call", "ResponseCodeRatio(500, 600", 18, /never closed/],
    ["an unknown function", "ErrorRatio() > 0.5", 1, /unknown function ErrorRatio\(\)/],
    ["negation", "!(NetworkErrorRatio() > 0.5)", 1, /'!' is not supported/],
    ["an int where the ratio needs a float", "NetworkErrorRatio() > 1", 23, /ratio \(float64\).*not 1/],
    ["a float where latency needs an int", "LatencyAtQuantileMS(50.0) > 100.5", 29, /whole milliseconds \(int\)/],
    ["an int quantile", "LatencyAtQuantileMS(50) > 100", 21, /argument 1 of LatencyAtQuantileMS must be a decimal/],
    ["a float status code", "ResponseCodeRatio(500.0, 600, 0, 600) > 0.5", 19, /must be an integer literal/],
    ["a negative literal", "NetworkErrorRatio() > -0.5", 23, /no negative numbers/],
    ["a negative argument", "ResponseCodeRatio(-1, 600, 0, 600) > 0.5", 19, /no negative numbers/],
    ["RequestThreshold()", "RequestThreshold() > 10", 1, /RequestThreshold\(\) does not exist in Traefik 3\.6 or 3\.7/],
    [
      "RequestThreshold() after a valid part",
      "NetworkErrorRatio() > 0.5 && RequestThreshold() > 10",
      30,
      /RequestThreshold/,
    ],
    ["the literal on the left", "0.5 < NetworkErrorRatio()", 1, /the number goes on the right/],
    ["a bare function", "NetworkErrorRatio()", 20, /expected a comparison/],
    ["a chained comparison", "NetworkErrorRatio() > 0.5 > 0.2", 27, /cannot be compared again/],
    ["a single &", "NetworkErrorRatio() > 0.5 & NetworkErrorRatio() > 0.1", 27, /unexpected character '&'/],
    ["a missing right side", "NetworkErrorRatio() >", 22, /must be a number literal, found the end/],
    ["a string", 'NetworkErrorRatio() > "0.5"', 23, /unexpected character '"'/],
    ["a backtick", "NetworkErrorRatio() > `x`", 23, /unexpected character '`'/],
    ["a template", "{{ .Env }}", 1, /unexpected character '\{'/],
    ["too few arguments", "ResponseCodeRatio(500, 600) > 0.5", 27, /takes 4 argument/],
    ["too many arguments", "NetworkErrorRatio(1) > 0.5", 19, /takes 0 argument/],
    ["a hex literal Go's Atoi refuses", "ResponseCodeRatio(0x1F4, 600, 0, 600) > 0.5", 19, /malformed number/],
    ["a leading zero", "LatencyAtQuantileMS(50.0) > 0100", 29, /malformed number/],
    ["a newline", "NetworkErrorRatio() > 0.5\n|| NetworkErrorRatio() > 0.2", 26, /unexpected character U\+A/],
    ["an empty expression", "  ", 1, /empty expression/],
    ["a dangling operator", "NetworkErrorRatio() > 0.5 &&", 29, /expected a function/],
    ["an empty group", "()", 2, /expected a function/],
    ["a selector", "x.NetworkErrorRatio() > 0.5", 1, /unknown name x/],
  ];
  it.each(invalid)("rejects %s", (_what, src, column, reason) => {
    const r = rejection(src);
    expect(r.reason).toMatch(reason);
    expect(r.column).toBe(column);
    expect(cbExpressionError(src)).toBe(`column ${column}: ${r.reason}`);
  });

  it.each(invalid.filter(([what]) => !["a hex literal Go's Atoi refuses", "a leading zero"].includes(what)))(
    "the semantics check rejects %s too",
    (_what, src) => {
      expect(checkOxyExpression(src, "cb")).toBeDefined();
    },
  );

  it("refuses ranges that make the breaker meaningless, which Traefik would accept", () => {
    expect(rejection("LatencyAtQuantileMS(150.0) > 10").reason).toMatch(/percentile/);
    expect(rejection("ResponseCodeRatio(600, 500, 0, 600) > 0.5").reason).toMatch(/a < b/);
    expect(rejection("NetworkErrorRatio() > 1e99").reason).toMatch(/out of range/);
  });

  it("refuses an expression longer than 500 characters", () => {
    const long = Array.from({ length: 30 }, () => "NetworkErrorRatio() > 0.5").join(" || ");
    expect(rejection(long).reason).toMatch(/longer than 500/);
  });
});
