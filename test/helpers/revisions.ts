import { sql } from "drizzle-orm";
import { expect } from "vitest";
import type { Db } from "../../src/db/client.js";
import type { ApiClient } from "./api-client.js";
import { PROVIDER_TOKEN } from "./app.js";
import { traefikSchemaErrors } from "./traefik-schema.js";

// Shared by the revision, freeze and guard suites: what Traefik is served, as the headers name it.

export interface Served {
  revision: number;
  hash: string;
  frozen: string | null;
  text: string;
  routers: string[];
}

/** One poll of GET /traefik/config, checked against Traefik's schema (an empty document allowed). */
export async function served(api: ApiClient): Promise<Served> {
  const reply = await api.get("/traefik/config", { token: PROVIDER_TOKEN });
  expect(reply.status).toBe(200);
  const doc = reply.body as { http?: { routers?: Record<string, unknown> } };
  expect(traefikSchemaErrors(reply.body, { allowEmpty: doc.http === undefined })).toEqual([]);
  return {
    revision: Number(reply.headers.get("x-config-revision")),
    hash: reply.headers.get("x-config-hash") ?? "",
    frozen: reply.headers.get("x-config-frozen"),
    text: reply.text,
    routers: Object.keys(doc.http?.routers ?? {}),
  };
}

export interface RevisionJson {
  revision: number;
  hash: string;
  created_at: string;
  cause: string;
  actor: string | null;
  detail: string | null;
  summary: {
    added: number;
    removed: number;
    changed: number;
    byKind: Record<string, { added: string[]; removed: string[]; changed: string[] }>;
  };
  bytes: number;
  held: boolean;
  confirmed_at: string | null;
  confirmed_by: string | null;
  first_served_at: string | null;
  last_served_at: string | null;
  served_now: boolean;
}

export async function revisions(
  api: ApiClient,
  query = "",
): Promise<{ items: RevisionJson[]; next_before: number | null }> {
  const r = await api.get<{ items: RevisionJson[]; next_before: number | null }>(`/api/v1/routing/revisions${query}`);
  expect(r.status).toBe(200);
  return r.body;
}

/** Creates `n` deployments `${prefix}0..` with one route and one healthy-to-be replica each. */
export async function seedPlatform(api: ApiClient, prefix: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}${i}`;
    expect((await api.post("/api/v1/deployments", { id, name: id })).status).toBe(201);
    expect(
      (
        await api.put(`/api/v1/deployments/${id}/routing`, {
          domain: `${id.replaceAll("_", "-")}.example.com`,
          target_port: 8080,
        })
      ).status,
    ).toBe(200);
    expect((await api.put(`/api/v1/deployments/${id}/locations/${id}_r`, { address: `10.9.0.${i + 1}` })).status).toBe(
      201,
    );
    ids.push(id);
  }
  return ids;
}

/** A bad script: one statement deleting most deployments (one NOTIFY, one render). */
export const massDelete = (db: Db, ids: string[]) =>
  db.execute(
    sql`delete from deployments where id in (${sql.join(
      ids.map((id) => sql`${id}`),
      sql`, `,
    )})`,
  );
