import type { Hono } from "hono";
import type { Caller } from "../api/identity.js";

/** An answer of the API, as the console reads it. */
export interface ApiReply<T> {
  status: number;
  body: T;
}

/** What every console page gets: who is logged in, the CSRF token for its forms, and the API as that token. */
export interface Console {
  caller: Caller;
  csrf: string;
  /** Calls the service's own /api/v1 with the session's token: the same endpoints, scopes and audit as curl. */
  api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<ApiReply<T>>;
  /** The raw response (streams, non-JSON bodies). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  can(scope: "write" | "certificates" | "admin"): boolean;
}

export type ConsoleEnv = { Variables: { console: Console } };
export type ConsoleApp = Hono<ConsoleEnv>;
