/** @jsxImportSource hono/jsx */
import type { ContentfulStatusCode } from "hono/utils/http-status";

// The API's problem details (RFC 9457) as the console's forms show them: each `errors[]` message next to the field
// it names, everything else (the `detail`, errors about no field on the form) in one notice above the form.

export interface FieldProblem {
  location: string;
  message: string;
}

export interface ProblemJson {
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  errors?: FieldProblem[];
}

/** The problem of an API answer, or undefined when it succeeded. */
export function problemOf(reply: { status: number; body: unknown }): ProblemJson | undefined {
  if (reply.status < 400) {
    return undefined;
  }
  const body = reply.body && typeof reply.body === "object" ? (reply.body as ProblemJson) : {};
  return { ...body, status: reply.status };
}

/** The status of the page that shows a refusal: the API's own (a 4xx), never a 5xx of the console's making. */
export function statusOf(p: ProblemJson): ContentfulStatusCode {
  const s = p.status ?? 400;
  return (s >= 400 && s < 500 ? s : 502) as ContentfulStatusCode;
}

/** A form's problems, placed: `field(name)` gives the messages of that field (and marks them shown). */
export class Placed {
  private readonly shown = new Set<FieldProblem>();
  constructor(
    readonly problem: ProblemJson | undefined,
    /** Turns an `errors[].location` (`body.key_pem`, `query.host`, `path.id`) into a form field name. */
    private readonly fieldOf: (location: string) => string | undefined = defaultFieldOf,
  ) {}

  field(name: string): string[] {
    const out: string[] = [];
    for (const e of this.problem?.errors ?? []) {
      if (this.fieldOf(e.location) === name) {
        this.shown.add(e);
        out.push(e.message);
      }
    }
    return out;
  }

  /** Errors that name no field on the form (render the notice after the fields were asked for). */
  unplaced(): FieldProblem[] {
    return (this.problem?.errors ?? []).filter((e) => !this.shown.has(e));
  }
}

/** `body.key_pem` → `key_pem`, `query.host` → `host`. */
export function defaultFieldOf(location: string): string | undefined {
  return location.replace(/^(body|query|path|operation)\./, "").split(/[.[]/)[0];
}

/** The attributes of an input whose field has problems: announced to screen readers with its message. */
export function invalidAttrs(id: string, messages: string[]): Record<string, string> {
  return messages.length > 0 ? { "aria-invalid": "true", "aria-describedby": `${id}-error` } : {};
}

/** The messages of one field, right under its input (text, not colour alone). */
export function FieldError({ id, messages }: { id: string; messages: string[] }) {
  if (messages.length === 0) {
    return null;
  }
  return (
    <span class="bad field-error" id={`${id}-error`}>
      {messages.map((m) => (
        <span style="display:block">Error: {m}</span>
      ))}
    </span>
  );
}

/** The problem's detail (and the errors no field shows) in a notice; say what was refused in `what`. */
export function ProblemNotice({ placed, what }: { placed: Placed; what: string }) {
  const p = placed.problem;
  if (!p) {
    return null;
  }
  const rest = placed.unplaced();
  return (
    <div class="notice bad" role="alert">
      <p style="margin:0">
        <strong>{what}</strong> {p.detail ?? p.title ?? `The API answered ${p.status}.`}
        {p.code ? <span class="muted"> ({p.code})</span> : null}
      </p>
      {rest.length > 0 ? (
        <ul style="margin:.25rem 0 0">
          {rest.map((e) => (
            <li>
              <code>{e.location}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
