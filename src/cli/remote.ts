import { CliError, EXIT } from "./common.js";

// A client for a running instance's admin API (`--url http://host:8080 --token …`), for the commands that must not
// open the database themselves (embedded PGlite is owned by the running service).

/** Exit code for "could not reach the database or the instance": never mistaken for "differences found". */
export const EXIT_UNREACHABLE = EXIT.unreachable;

export interface Remote {
  url: string;
  token: string | undefined;
}

interface ProblemBody {
  code?: string;
  detail?: string;
  errors?: { location: string; message: string }[];
}

/** A problem answer as one CLI error: 4xx are the user's to fix (exit 2), the rest mean "unreachable" (exit 3). */
function problemError(status: number, text: string): CliError {
  let p: ProblemBody = {};
  try {
    p = JSON.parse(text) as ProblemBody;
  } catch {
    // not a problem body (a proxy in between): the status says enough
  }
  if (status === 401) {
    return new CliError("the instance refused the token (401): give the admin token with --token or OBIENTE_TOKEN");
  }
  if (status >= 400 && status < 500) {
    const errors = (p.errors ?? []).slice(0, 20).map((e) => `\n  ${e.location}: ${e.message}`);
    return new CliError(`${p.detail ?? `HTTP ${status}`}${errors.length > 1 ? errors.join("") : ""}`);
  }
  return new CliError(`the instance answered ${status}${p.detail ? `: ${p.detail}` : ""}`, EXIT_UNREACHABLE);
}

/** Sends one request to the admin API; answers the body text of a 2xx, throws a CliError otherwise. */
export async function callRemote(
  remote: Remote,
  method: "GET" | "POST",
  path: string,
  body?: { text: string; type: string },
): Promise<string> {
  const base = remote.url.replace(/\/+$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(remote.token ? { authorization: `Bearer ${remote.token}` } : {}),
        ...(body ? { "content-type": body.type } : {}),
        accept: "application/json, application/yaml",
      },
      ...(body ? { body: body.text } : {}),
      signal: AbortSignal.timeout(120_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    // ECONNREFUSED and the like; fetch's own refusals ("bad port") carry only a message.
    const why =
      typeof cause?.code === "string"
        ? cause.code
        : typeof cause?.message === "string"
          ? cause.message
          : err instanceof Error
            ? err.name
            : "no answer";
    throw new CliError(`could not reach ${base} (${why})`, EXIT_UNREACHABLE);
  }
  const text = await res.text();
  if (!res.ok) {
    throw problemError(res.status, text);
  }
  return text;
}
