/** @jsxImportSource hono/jsx */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { Csrf, DataTable, Page } from "../layout.js";
import type { ConsoleApp, ConsoleEnv } from "../types.js";
import { FieldError, invalidAttrs, Placed, ProblemNotice, problemOf, statusOf } from "./problem.js";

interface Certificate {
  id: string;
  subject: string;
  issuer: string;
  sans: string[];
  not_before: string;
  not_after: string;
  fingerprint_sha256: string;
  expires_in_days: number;
  expiring_soon: boolean;
  used_by: { route_id: string; deployment_id: string; domain: string }[];
  created_at: string;
}

interface PageState {
  /** Shown after a redirect: `?uploaded=<id>` or `?deleted=<id>`. */
  uploaded?: string | undefined;
  deleted?: string | undefined;
  /** The upload that was refused: the certificate is shown again, never the key. */
  certPem?: string;
  uploadProblem?: Placed;
  /** A refused delete (or any write the API refused that is not the upload). */
  otherProblem?: Placed;
}

const day = (iso: string) => iso.slice(0, 10);
const deploymentHref = (id: string) => `/ui/deployments/${encodeURIComponent(id)}`;
/** `ab12cd…` → `AB:12:CD:…`, the way browsers show a fingerprint. */
const colons = (hex: string) => hex.toUpperCase().replace(/(..)(?!$)/g, "$1:");

/** GET/POST /ui/certificates, POST /ui/certificates/:id/delete: uploaded certificates, upload and delete. */
export function registerCertificatePages(app: ConsoleApp): void {
  app.get("/certificates", (c) =>
    renderCertificates(c, { uploaded: c.req.query("uploaded"), deleted: c.req.query("deleted") }),
  );

  app.post("/certificates", async (c) => {
    const ui = c.get("console");
    const form = await c.req.parseBody();
    const certPem = typeof form.cert_pem === "string" ? form.cert_pem : "";
    const keyPem = typeof form.key_pem === "string" ? form.key_pem : "";
    const reply = await ui.api<Certificate>("POST", "/api/v1/certificates", { cert_pem: certPem, key_pem: keyPem });
    const problem = problemOf(reply);
    if (!problem) {
      return c.redirect(`/ui/certificates?uploaded=${encodeURIComponent(reply.body.id)}`, 303);
    }
    return renderCertificates(c, { certPem, uploadProblem: new Placed(problem) }, statusOf(problem));
  });

  app.post("/certificates/:id/delete", async (c) => {
    const ui = c.get("console");
    const id = c.req.param("id");
    const reply = await ui.api("DELETE", `/api/v1/certificates/${encodeURIComponent(id)}`);
    const problem = problemOf(reply);
    if (!problem) {
      return c.redirect(`/ui/certificates?deleted=${encodeURIComponent(id)}`, 303);
    }
    return renderCertificates(c, { otherProblem: new Placed(problem) }, statusOf(problem));
  });
}

async function renderCertificates(c: Context<ConsoleEnv>, state: PageState, status: ContentfulStatusCode = 200) {
  const ui = c.get("console");
  const reply = await ui.api<{ items: Certificate[] }>("GET", "/api/v1/certificates");
  const listProblem = problemOf(reply);
  const items = listProblem ? [] : reply.body.items;
  const uploaded = state.uploaded ? items.find((x) => x.id === state.uploaded) : undefined;
  const soon = items.filter((x) => x.expiring_soon).length;
  return c.html(
    <Page title="Certificates" path="/ui/certificates" caller={ui.caller} csrf={ui.csrf}>
      <h1>Certificates</h1>
      {uploaded ? (
        <p class="notice" role="status">
          Uploaded the certificate for <a href={`#${uploaded.id}`}>{uploaded.sans.join(", ")}</a> (
          <code>{uploaded.id}</code>). Routes with TLS on these names use it from the next config revision.
        </p>
      ) : null}
      {state.deleted ? (
        <p class="notice" role="status">
          Deleted certificate <code>{state.deleted}</code>.
        </p>
      ) : null}
      {listProblem ? (
        <ProblemNotice placed={new Placed(listProblem)} what="The certificates cannot be listed." />
      ) : null}
      {state.otherProblem ? <ProblemNotice placed={state.otherProblem} what="The API refused this." /> : null}
      {state.uploadProblem && !ui.can("certificates") ? (
        <ProblemNotice placed={state.uploadProblem} what="The certificate was not uploaded." />
      ) : null}
      <p class="muted">
        {items.length === 0
          ? "No certificate is uploaded: routes with TLS get theirs from their ACME resolver."
          : `${items.length} uploaded certificate${items.length === 1 ? "" : "s"}${soon > 0 ? `, ${soon} expiring soon` : ""}. Uploaded certificates take precedence over ACME for the names they cover.`}
      </p>
      {items.length > 0 ? <CertificateTable items={items} canDelete={ui.can("certificates")} csrf={ui.csrf} /> : null}
      {ui.can("certificates") ? (
        <UploadForm
          csrf={ui.csrf}
          certPem={state.certPem ?? ""}
          placed={state.uploadProblem ?? new Placed(undefined)}
        />
      ) : (
        <p class="muted">Uploading and deleting certificates needs a token with the certificates scope.</p>
      )}
    </Page>,
    status,
  );
}

function CertificateTable({ items, canDelete, csrf }: { items: Certificate[]; canDelete: boolean; csrf: string }) {
  return (
    <DataTable
      columns={[
        "Names (SANs)",
        "Subject / issuer",
        "Expires",
        "SHA-256 fingerprint",
        "Used by",
        canDelete && "Actions",
      ]}
    >
      {items.map((x) => (
        <tr id={x.id}>
          <td>
            {x.sans.map((s) => (
              <code style="display:block">{s}</code>
            ))}
            <span class="muted" style="font-size:.8rem">
              {x.id}
            </span>
          </td>
          <td>
            <span style="display:block">{x.subject}</span>
            <span class="muted">issued by {x.subject === x.issuer ? "itself (self-signed)" : x.issuer}</span>
          </td>
          <td>
            <span style="display:block">{day(x.not_after)}</span>
            <Expiry cert={x} />
          </td>
          <td>
            <code style="word-break:break-all;font-size:.75rem" title={x.fingerprint_sha256}>
              {colons(x.fingerprint_sha256)}
            </code>
          </td>
          <td>
            {x.used_by.length === 0 ? (
              <span class="muted">no route</span>
            ) : (
              x.used_by.map((u) => (
                <a href={deploymentHref(u.deployment_id)} style="display:block">
                  {u.domain} <span class="muted">({u.deployment_id})</span>
                </a>
              ))
            )}
          </td>
          {canDelete ? (
            <td>
              <DeleteConfirm cert={x} csrf={csrf} />
            </td>
          ) : null}
        </tr>
      ))}
    </DataTable>
  );
}

function Expiry({ cert }: { cert: Certificate }) {
  const d = cert.expires_in_days;
  if (d < 0) {
    return (
      <>
        <span class="pill bad">expired</span> <span class="bad">{-d} days ago</span>
      </>
    );
  }
  const left = `${d} day${d === 1 ? "" : "s"} left`;
  return cert.expiring_soon ? (
    <>
      <span class="pill warn">expires soon</span> <span class="warn">{left}</span>
    </>
  ) : (
    <span class="muted">{left}</span>
  );
}

/** A delete in two steps without JavaScript: the button only appears once the summary is opened. */
function DeleteConfirm({ cert, csrf }: { cert: Certificate; csrf: string }) {
  const names = cert.sans.join(", ");
  return (
    <details>
      <summary style="white-space:nowrap">Delete…</summary>
      <form method="post" action={`/ui/certificates/${encodeURIComponent(cert.id)}/delete`}>
        <Csrf token={csrf} />
        <p style="margin:.25rem 0">
          Delete the certificate for {names}?{" "}
          {cert.used_by.length > 0
            ? `${cert.used_by.length} route(s) use it and fall back to their ACME resolver.`
            : "No route uses it."}
        </p>
        <button type="submit" aria-label={`Delete the certificate for ${names}`}>
          Delete certificate
        </button>
      </form>
    </details>
  );
}

function UploadForm({ csrf, certPem, placed }: { csrf: string; certPem: string; placed: Placed }) {
  const certErr = placed.field("cert_pem");
  const keyErr = placed.field("key_pem");
  return (
    <section aria-labelledby="upload">
      <h2 id="upload">Upload a certificate</h2>
      <ProblemNotice placed={placed} what="The certificate was not uploaded." />
      <form method="post" action="/ui/certificates">
        <Csrf token={csrf} />
        <p>
          <label for="cert_pem">
            Certificate (PEM: the leaf first, then its chain)
            <textarea
              id="cert_pem"
              name="cert_pem"
              required
              spellcheck={false}
              placeholder="-----BEGIN CERTIFICATE-----"
              {...invalidAttrs("cert_pem", certErr)}
            >
              {certPem}
            </textarea>
            <FieldError id="cert_pem" messages={certErr} />
          </label>
        </p>
        <p>
          <label for="key_pem">
            Private key (PEM, unencrypted; stored encrypted, never shown again)
            <textarea
              id="key_pem"
              name="key_pem"
              required
              spellcheck={false}
              autocomplete="off"
              placeholder="-----BEGIN PRIVATE KEY-----"
              {...invalidAttrs("key_pem", keyErr)}
            />
            <FieldError id="key_pem" messages={keyErr} />
          </label>
        </p>
        <button type="submit">Upload</button>
      </form>
    </section>
  );
}
