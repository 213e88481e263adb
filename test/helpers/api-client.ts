import { expect } from "vitest";
import type { z } from "zod";
import type { DnsRecord, LocationView, RouteView, RoutingView } from "../../src/api/schemas.js";
import { buildApp, type Wiring } from "../../src/app-wiring.js";
import type { Config } from "../../src/config/env.js";
import type { DbHandle } from "../../src/db/client.js";
import type { Fields, Logger } from "../../src/lib/logger.js";
import type { ConfigCache } from "../../src/provider/config-cache.js";
import type { DynamicConfig, TraefikDocument } from "../../src/render/types.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN } from "./app.js";
import { traefikSchemaErrors } from "./traefik-schema.js";

// The client side of the API test harness (useApiServer in api-server.ts starts the server): one client over real
// HTTP or app.request(), which also watches every answer for 5xx statuses and leaked internals, so each suite can
// assert "never" after each test.

export type RouteJson = z.infer<typeof RouteView>;
export type RoutingJson = z.infer<typeof RoutingView>;
export type LocationJson = z.infer<typeof LocationView>;
export type DnsJson = z.infer<typeof DnsRecord>;
export interface ProblemJson {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  code: string;
  requestId?: string;
  errors?: { location: string; message: string }[];
  [extra: string]: unknown;
}

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  contentType: string | null;
  text: string;
  /** Parsed JSON when the body is JSON, else undefined. */
  body: T;
}

export interface SendOptions {
  /** Serialized as JSON with `Content-Type: application/json`. */
  json?: unknown;
  /** Sent as is (set the content type yourself through `headers`). */
  raw?: RequestInit["body"];
  headers?: Record<string, string>;
  /** Bearer token; ADMIN_TOKEN by default, null for none. */
  token?: string | null;
}

/** What should never reach a client: a stack frame, a source path or a driver/parser message. */
const LEAKS: RegExp[] = [
  /\bat [\w.<>$]+ \(/, // "    at handler (" stack frame
  /\bat (file:|node:|\/)/,
  /\/(src|test|node_modules)\/[\w./-]+\.(ts|js)/,
  /\.(ts|js):\d+:\d+/,
  /duplicate key|violates|unique constraint|foreign key|relation "|syntax error at/i,
  /Unexpected token|JSON at position|SyntaxError|TypeError|ReferenceError|RangeError/,
];

export function leaksIn(text: string): string[] {
  return LEAKS.filter((re) => re.test(text)).map(String);
}

export type Send = (path: string, init: RequestInit) => Promise<Response>;

export class ApiClient {
  /** Every answer that broke a "never": a 5xx, or internals in an error body. */
  readonly faults: string[] = [];

  /** @param staticConfig the Traefik static config served configs are checked against (default: the shipped one). */
  constructor(
    private readonly sendRaw: Send,
    private readonly staticConfig?: unknown,
  ) {}

  async send<T = Record<string, unknown>>(method: string, path: string, opts: SendOptions = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
    if (token !== null) {
      headers.authorization = `Bearer ${token}`;
    }
    let body: RequestInit["body"] = opts.raw;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["content-type"] ??= "application/json";
    }
    const res = await this.sendRaw(path, { method, headers, body });
    const text = await res.text();
    const contentType = res.headers.get("content-type");
    let parsed: unknown;
    if (contentType && /json/.test(contentType) && text.length > 0) {
      parsed = JSON.parse(text);
    }
    if (res.status >= 500) {
      this.faults.push(`${method} ${path} → ${res.status}: ${text.slice(0, 300)}`);
    }
    if (res.status >= 400) {
      const leaked = leaksIn(text);
      if (leaked.length > 0) {
        this.faults.push(`${method} ${path} → ${res.status} leaks ${leaked.join(", ")}: ${text.slice(0, 300)}`);
      }
    }
    return { status: res.status, headers: res.headers, contentType, text, body: parsed as T };
  }

  get = <T = Record<string, unknown>>(path: string, opts?: SendOptions) => this.send<T>("GET", path, opts);
  post = <T = Record<string, unknown>>(path: string, json: unknown, opts?: SendOptions) =>
    this.send<T>("POST", path, { ...opts, json });
  put = <T = Record<string, unknown>>(path: string, json: unknown, opts?: SendOptions) =>
    this.send<T>("PUT", path, { ...opts, json });
  delete = (path: string, opts?: SendOptions) => this.send("DELETE", path, opts);

  /** GET /traefik/config with the provider token; checks it against Traefik's schema and semantics. */
  async traefikConfig(headers: Record<string, string> = {}): Promise<{ config: DynamicConfig; reply: Reply }> {
    const reply = await this.get("/traefik/config", { token: PROVIDER_TOKEN, headers });
    expect(reply.status).toBe(200);
    expect(traefikSchemaErrors(reply.body, { staticConfig: this.staticConfig })).toEqual([]);
    return { config: reply.body as unknown as DynamicConfig, reply };
  }

  /**
   * Whether the served config has a router with this rule; until a change reaches the instance, a config with
   * nothing routed yet (`{}`) is a plain "not yet", so this can be polled with waitFor.
   */
  async routes(rule: string): Promise<boolean> {
    const doc = await this.traefikDocument();
    return Object.values(doc.http?.routers ?? {}).some((r) => r.rule === rule);
  }

  /** Like traefikConfig, when the document may be `{}` (nothing left to route: Traefik applies it). */
  async traefikDocument(): Promise<TraefikDocument> {
    const reply = await this.get("/traefik/config", { token: PROVIDER_TOKEN });
    expect(reply.status).toBe(200);
    const doc = reply.body as unknown as TraefikDocument;
    const allowEmpty = doc.http === undefined;
    expect(traefikSchemaErrors(reply.body, { staticConfig: this.staticConfig, allowEmpty })).toEqual([]);
    return doc;
  }
}

export const httpClient = (baseUrl: string, staticConfig?: unknown) =>
  new ApiClient((path, init) => fetch(`${baseUrl}${path}`, init), staticConfig);

/** Asserts an RFC 9457 problem answer with a stable code; returns its body for further checks. */
export function expectProblem(reply: Reply<unknown>, status: number, code: string): ProblemJson {
  expect({ status: reply.status, contentType: reply.contentType }).toEqual({
    status,
    contentType: "application/problem+json",
  });
  const body = reply.body as ProblemJson;
  expect(body).toMatchObject({
    type: code === "NOT_FOUND" || code === "METHOD_NOT_ALLOWED" ? "about:blank" : expect.stringMatching(/^urn:/),
    title: expect.any(String),
    status,
    code,
    instance: expect.stringMatching(/^\//),
    requestId: reply.headers.get("x-request-id"),
  });
  expect(leaksIn(reply.text)).toEqual([]);
  return body;
}

/** A 400 VALIDATION_FAILED whose errors[] names exactly these locations (a field may fail more than one check). */
export function expectInvalid(reply: Reply<unknown>, ...locations: string[]): ProblemJson {
  const p = expectProblem(reply, 400, "VALIDATION_FAILED");
  expect([...new Set((p.errors ?? []).map((e) => e.location))].sort()).toEqual([...locations].sort());
  for (const e of p.errors ?? []) {
    expect(e.message.length).toBeGreaterThan(0);
  }
  return p;
}

/** A logger that remembers error lines (an "unhandled error" there means a 500 happened). */
export function recordingLogger(): Logger & { errors: { message: string; fields?: Fields }[] } {
  const errors: { message: string; fields?: Fields }[] = [];
  return {
    errors,
    debug() {},
    info() {},
    warn() {},
    error(message, fields) {
      errors.push({ message, fields });
    },
  };
}

export interface InProcess {
  client: ApiClient;
  app: Wiring["app"];
  cache: ConfigCache;
  logger: ReturnType<typeof recordingLogger>;
  close(): Promise<void>;
}

/** The app wired as startServer wires it, minus the sockets and the change feed: for `app.request()` suites. */
export async function inProcessApp(handle: DbHandle, config: Config): Promise<InProcess> {
  const logger = recordingLogger();
  const { app, cache, close } = await buildApp(config, handle, { logger });
  await cache.ensureFresh();
  const client = new ApiClient(async (path, init) => app.request(path, init));
  return { client, app, cache, logger, close };
}
