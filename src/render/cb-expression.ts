// Circuit-breaker expressions (Traefik `circuitBreaker.expression`), parsed and type-checked the way Traefik's
// oxy does, then rendered in one normal form. Pure.
//
// Traefik v3.6 (vulcand/oxy v2.0.3, vulcand/predicate v1.2.0) and v3.7.9 (oxy v2.1.0, predicate v1.3.0) read the
// expression identically: predicate.Parse is go/parser.ParseExpr plus a walk (predicate parse.go), and
// oxy cbreaker/predicates.go defines what may appear:
//   - functions `NetworkErrorRatio()` → float64, `ResponseCodeRatio(int, int, int, int)` → float64,
//     `LatencyAtQuantileMS(float64)` → int (milliseconds). Arguments are literals of exactly that Go type:
//     reflect.Call panics (→ error) on `LatencyAtQuantileMS(50)` (an int) or on a nested call;
//   - comparisons `== != < <= > >=` with the function on the LEFT and a literal of the function's result type on
//     the right (intLT/float64GT… assert `val.(int)` / `val.(float64)`): `NetworkErrorRatio() > 1` and
//     `LatencyAtQuantileMS(50.0) > 100.5` are errors, as is `0.5 < NetworkErrorRatio()`;
//   - `&&` and `||` between comparisons (Go precedence: `&&` binds tighter), parentheses around them;
//   - nothing else: `!` and unary `-`/`+` have no operator in the Def (so no negative literals), identifiers and
//     strings are undefined. `RequestThreshold()` arrives with oxy v2.2.0, after Traefik v3.7.9.
// This parser is stricter than Go's in small ways that never reject a useful expression: only spaces and tabs
// between tokens (no comments or newlines), parentheses only around comparisons or groups of them (not around a
// lone call or literal), decimal integers without leading zeros, and numbers in a sane range (Go's strconv would
// reject an out-of-range literal, and `0x…`/`1_000` integers fail its Atoi).
// ../shared/traefik/semantics/semantics.mjs checkOxyExpression encodes the same grammar; every expression this
// accepts, it accepts (test/unit/cb-expression.test.ts checks both on the same inputs).

type ValueType = "int" | "float";

interface FunctionSig {
  readonly args: readonly ValueType[];
  readonly returns: ValueType;
  /** Shown in the error when an argument is wrong. */
  readonly example: string;
}

const FUNCTIONS: Readonly<Record<string, FunctionSig>> = {
  LatencyAtQuantileMS: { args: ["float"], returns: "int", example: "LatencyAtQuantileMS(50.0) > 100" },
  NetworkErrorRatio: { args: [], returns: "float", example: "NetworkErrorRatio() > 0.5" },
  ResponseCodeRatio: {
    args: ["int", "int", "int", "int"],
    returns: "float",
    example: "ResponseCodeRatio(500, 600, 0, 600) > 0.25",
  },
};
const KNOWN = "NetworkErrorRatio(), ResponseCodeRatio(a, b, c, d) or LatencyAtQuantileMS(q)";
const COMPARISONS = ["==", "!=", "<=", ">=", "<", ">"] as const;
type Comparison = (typeof COMPARISONS)[number];

/** Longest accepted expression (Traefik has no limit; ours keeps rows and configs small). */
export const CB_EXPRESSION_MAX_LENGTH = 500;
/** Largest literal: far beyond any meaningful ratio, quantile, status or latency, and inside Go's int and float. */
const MAX_LITERAL = 1_000_000_000;

type Token =
  | { kind: "int" | "float"; text: string; value: number; col: number }
  | { kind: "ident"; text: string; col: number }
  | { kind: "op"; text: string; col: number }
  | { kind: "eof"; text: ""; col: number }
  /** A lexical error, raised when the parser reaches it (so errors come in source order). */
  | { kind: "bad"; text: ""; col: number; reason: string };

type Node =
  | { kind: "cmp"; fn: string; args: string[]; op: Comparison; value: string }
  | { kind: "and" | "or"; items: Node[] };

/** A parse or type error, with the 1-based column of the character where it was found. */
export class CbExpressionError extends Error {
  constructor(
    readonly column: number,
    readonly reason: string,
  ) {
    super(`column ${column}: ${reason}`);
  }
}

const INT_RE = /^(?:0|[1-9][0-9]*)(?![0-9A-Za-z_.])/;
const FLOAT_RE =
  /^(?:[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)(?![0-9A-Za-z_.])/;
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*/;
const OPS = ["&&", "||", "==", "!=", "<=", ">=", "<", ">", "(", ")", ",", "!", "-", "+"];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  try {
    lex(src, out);
  } catch (err) {
    if (!(err instanceof CbExpressionError)) {
      throw err;
    }
    out.push({ kind: "bad", text: "", col: err.column, reason: err.reason });
  }
  out.push({ kind: "eof", text: "", col: src.length + 1 });
  return out;
}

function lex(src: string, out: Token[]): void {
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    const col = i + 1;
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    const rest = src.slice(i);
    const float = FLOAT_RE.exec(rest);
    if (float) {
      const value = Number(float[0]);
      if (!Number.isFinite(value) || value > MAX_LITERAL) {
        throw new CbExpressionError(col, `number ${float[0]} is out of range (at most ${MAX_LITERAL})`);
      }
      out.push({ kind: "float", text: float[0], value, col });
      i += float[0].length;
      continue;
    }
    const int = INT_RE.exec(rest);
    if (int) {
      const value = Number(int[0]);
      if (value > MAX_LITERAL) {
        throw new CbExpressionError(col, `number ${int[0]} is out of range (at most ${MAX_LITERAL})`);
      }
      out.push({ kind: "int", text: int[0], value, col });
      i += int[0].length;
      continue;
    }
    if (/[0-9]/.test(c)) {
      throw new CbExpressionError(col, "malformed number (write decimal digits such as 100 or 0.5)");
    }
    const ident = IDENT_RE.exec(rest);
    if (ident) {
      out.push({ kind: "ident", text: ident[0], col });
      i += ident[0].length;
      continue;
    }
    const op = OPS.find((o) => rest.startsWith(o));
    if (!op) {
      const shown = /^[\x21-\x7E]$/.test(c) ? `'${c}'` : `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase()}`;
      throw new CbExpressionError(col, `unexpected character ${shown}`);
    }
    out.push({ kind: "op", text: op, col });
    i += op.length;
  }
}

const shown = (t: Token) => (t.kind === "eof" ? "the end of the expression" : `'${t.text}'`);

class Parser {
  private p = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    const t = this.toks[this.p] as Token;
    if (t.kind === "bad") {
      throw new CbExpressionError(t.col, t.reason);
    }
    return t;
  }
  private next(): Token {
    const t = this.peek();
    this.p++;
    return t;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return t.kind === "op" && t.text === text;
  }

  parseAll(): Node {
    const node = this.or();
    const t = this.peek();
    if (t.kind !== "eof") {
      if (t.kind === "op" && t.text === ")") {
        throw new CbExpressionError(t.col, "unbalanced parentheses: this ')' closes nothing");
      }
      if (t.kind === "op" && COMPARISONS.includes(t.text as Comparison)) {
        throw new CbExpressionError(t.col, `a comparison cannot be compared again: join comparisons with && or ||`);
      }
      throw new CbExpressionError(t.col, `expected && or || or the end, found ${shown(t)}`);
    }
    return node;
  }

  private or(): Node {
    const items = [this.and()];
    while (this.isOp("||")) {
      this.next();
      items.push(this.and());
    }
    return items.length === 1 ? (items[0] as Node) : { kind: "or", items: items.flatMap(flatten("or")) };
  }

  private and(): Node {
    const items = [this.term()];
    while (this.isOp("&&")) {
      this.next();
      items.push(this.term());
    }
    return items.length === 1 ? (items[0] as Node) : { kind: "and", items: items.flatMap(flatten("and")) };
  }

  private term(): Node {
    const t = this.peek();
    if (t.kind === "op" && t.text === "(") {
      this.next();
      const inner = this.or();
      const close = this.peek();
      if (!(close.kind === "op" && close.text === ")")) {
        if (close.kind === "eof") {
          throw new CbExpressionError(t.col, "unbalanced parentheses: this '(' is never closed");
        }
        throw new CbExpressionError(close.col, `expected ')', && or ||, found ${shown(close)}`);
      }
      this.next();
      return inner;
    }
    return this.comparison();
  }

  private comparison(): Node {
    const t = this.peek();
    if (t.kind === "op" && t.text === "!") {
      throw new CbExpressionError(t.col, "'!' is not supported (oxy has no negation): invert the comparison instead");
    }
    if (t.kind === "op" && (t.text === "-" || t.text === "+")) {
      throw new CbExpressionError(t.col, `unary '${t.text}' is not supported (no negative numbers)`);
    }
    if (t.kind === "int" || t.kind === "float") {
      throw new CbExpressionError(
        t.col,
        `a comparison starts with a function (${KNOWN}); the number goes on the right`,
      );
    }
    if (t.kind !== "ident") {
      throw new CbExpressionError(t.col, `expected a function such as NetworkErrorRatio(), found ${shown(t)}`);
    }
    const { fn, args, returns } = this.call();
    const opTok = this.next();
    if (!(opTok.kind === "op" && COMPARISONS.includes(opTok.text as Comparison))) {
      throw new CbExpressionError(
        opTok.col,
        `expected a comparison (==, !=, <, <=, >, >=) after ${fn}(…), found ${shown(opTok)}`,
      );
    }
    const lit = this.next();
    if (lit.kind === "op" && (lit.text === "-" || lit.text === "+")) {
      throw new CbExpressionError(lit.col, `unary '${lit.text}' is not supported (no negative numbers)`);
    }
    if (lit.kind !== "int" && lit.kind !== "float") {
      throw new CbExpressionError(
        lit.col,
        `the right side of a comparison must be a number literal, found ${shown(lit)}`,
      );
    }
    if (lit.kind !== returns) {
      throw new CbExpressionError(
        lit.col,
        returns === "float"
          ? `${fn}() is a ratio (float64): compare it with a decimal such as 0.5, not ${lit.text}`
          : `${fn}() is whole milliseconds (int): compare it with an integer such as 100, not ${lit.text}`,
      );
    }
    return { kind: "cmp", fn, args, op: opTok.text as Comparison, value: formatNumber(lit) };
  }

  private call(): { fn: string; args: string[]; returns: ValueType } {
    const name = this.next() as Extract<Token, { kind: "ident" }>;
    const sig = Object.hasOwn(FUNCTIONS, name.text) ? FUNCTIONS[name.text] : undefined;
    if (!sig) {
      const after = this.toks[this.p]; // not peek(): the name is the error, whatever follows it
      const why =
        name.text === "RequestThreshold"
          ? "RequestThreshold() does not exist in Traefik 3.6 or 3.7 (it comes with oxy v2.2.0)"
          : after?.kind === "op" && after.text === "("
            ? `unknown function ${name.text}()`
            : `unknown name ${name.text}`;
      throw new CbExpressionError(name.col, `${why}; use ${KNOWN}`);
    }
    const open = this.peek();
    if (!(open.kind === "op" && open.text === "(")) {
      throw new CbExpressionError(open.col, `expected '(' after ${name.text}, found ${shown(open)}`);
    }
    this.next();
    const args: string[] = [];
    while (!this.isOp(")")) {
      const a = this.next();
      const i = args.length;
      if (a.kind === "eof") {
        throw new CbExpressionError(open.col, "unbalanced parentheses: this '(' is never closed");
      }
      if (i >= sig.args.length) {
        throw new CbExpressionError(a.col, `${name.text} takes ${sig.args.length} argument(s) (${sig.example})`);
      }
      if (a.kind === "op" && (a.text === "-" || a.text === "+")) {
        throw new CbExpressionError(a.col, `unary '${a.text}' is not supported (no negative numbers)`);
      }
      const want = sig.args[i] as ValueType;
      if (a.kind !== want) {
        const what = want === "float" ? "a decimal literal such as 50.0" : "an integer literal such as 500";
        throw new CbExpressionError(
          a.col,
          `argument ${i + 1} of ${name.text} must be ${what}, found ${shown(a)} (${sig.example})`,
        );
      }
      args.push(formatNumber(a));
      if (this.isOp(",")) {
        this.next();
      } else if (!this.isOp(")")) {
        const t = this.peek();
        if (t.kind === "eof") {
          throw new CbExpressionError(open.col, "unbalanced parentheses: this '(' is never closed");
        }
        throw new CbExpressionError(t.col, `expected ',' or ')' in ${name.text}(…), found ${shown(t)}`);
      }
    }
    const close = this.next();
    if (args.length !== sig.args.length) {
      throw new CbExpressionError(close.col, `${name.text} takes ${sig.args.length} argument(s) (${sig.example})`);
    }
    checkArguments(name, args, open.col);
    return { fn: name.text, args, returns: sig.returns };
  }
}

/** Range checks Traefik does not make but whose violation makes the breaker meaningless. */
function checkArguments(name: Token, args: readonly string[], col: number): void {
  const n = args.map(Number);
  if (name.text === "LatencyAtQuantileMS" && (n[0] as number) > 100) {
    throw new CbExpressionError(col, "the quantile of LatencyAtQuantileMS is a percentile: 0.0 to 100.0");
  }
  if (name.text === "ResponseCodeRatio") {
    const [a, b, c, d] = n as [number, number, number, number];
    // oxy memmetrics ResponseCodeRatio: codes in [a, b) over codes in [c, d).
    if (b > 1000 || d > 1000 || a >= b || c >= d) {
      throw new CbExpressionError(
        col,
        "ResponseCodeRatio(a, b, c, d) counts status codes in [a, b) over those in [c, d): needs a < b ≤ 1000 and c < d ≤ 1000",
      );
    }
  }
}

const flatten = (kind: "and" | "or") => (n: Node) => (n.kind === kind ? n.items : [n]);

/** A literal as Go reads it, written canonically: an int stays an int token, a float keeps a '.'/exponent. */
function formatNumber(t: Token): string {
  if (t.kind !== "int" && t.kind !== "float") {
    return t.text;
  }
  if (t.kind === "int") {
    return String(t.value);
  }
  const s = String(t.value);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

function render(n: Node, parent?: "and" | "or"): string {
  if (n.kind === "cmp") {
    return `${n.fn}(${n.args.join(", ")}) ${n.op} ${n.value}`;
  }
  const s = n.items.map((i) => render(i, n.kind)).join(n.kind === "and" ? " && " : " || ");
  return parent === "and" && n.kind === "or" ? `(${s})` : s;
}

/**
 * Parses and type-checks a circuit-breaker expression; returns it in normal form (single spaces around operators,
 * `, ` between arguments, parentheses only where `||` sits inside `&&`). Throws CbExpressionError.
 */
export function parseCbExpression(src: string): string {
  if (src.length > CB_EXPRESSION_MAX_LENGTH) {
    throw new CbExpressionError(CB_EXPRESSION_MAX_LENGTH + 1, `longer than ${CB_EXPRESSION_MAX_LENGTH} characters`);
  }
  const toks = tokenize(src);
  if (toks[0]?.kind === "eof") {
    throw new CbExpressionError(1, `empty expression; use e.g. ${FUNCTIONS.NetworkErrorRatio?.example}`);
  }
  return render(new Parser(toks).parseAll());
}

/** The error of an expression, or undefined when Traefik accepts it. */
export function cbExpressionError(src: string): string | undefined {
  try {
    parseCbExpression(src);
    return undefined;
  } catch (err) {
    if (err instanceof CbExpressionError) {
      return err.message;
    }
    throw err;
  }
}
