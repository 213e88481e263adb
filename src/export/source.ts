import type { TraefikDocument } from "../render/types.js";

// Where the exporter gets the config when it does not open the database itself: a running instance's
// GET /traefik/config (the endpoint Traefik's HTTP provider polls). With embedded PGlite that is the only way in,
// since the service holds the folder's lock.

/** The instance could not be reached or answered with a failure; `auth` when it refused the token. */
export class SourceUnavailable extends Error {
  constructor(
    message: string,
    readonly auth = false,
  ) {
    super(message);
  }
}

/** `http://host:8080` or the full `…/traefik/config` URL → the config endpoint's URL, asking for JSON. */
export function configEndpoint(base: string): URL {
  const url = new URL(base);
  if (!url.pathname.replace(/\/+$/, "").endsWith("/traefik/config")) {
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/traefik/config`;
  }
  url.searchParams.set("format", "json");
  return url;
}

/** Reads the served config once (JSON), with the provider token when given; throws SourceUnavailable. */
export async function fetchConfig(
  base: string,
  token: string | undefined,
  timeoutMs = 10_000,
): Promise<TraefikDocument> {
  const url = configEndpoint(base);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new SourceUnavailable(`${url.origin}: not reachable (${cause})`);
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new SourceUnavailable(
      `${url.origin} refused the token (${res.status}): pass PROVIDER_TOKEN as --token or OBIENTE_PROVIDER_TOKEN`,
      true,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    // 503 means the instance has not read its database yet: the previous export stays as it is.
    throw new SourceUnavailable(`${url.origin} answered ${res.status} for ${url.pathname}`);
  }
  const body: unknown = await res.json().catch(() => undefined);
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new SourceUnavailable(`${url.origin}: ${url.pathname} did not answer a JSON object`);
  }
  return body as TraefikDocument;
}
