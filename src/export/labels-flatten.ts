// Flattens one rendered Traefik object (a router, a service, a middleware) into Docker provider label keys, the
// way Traefik reads them back. Traefik decodes container labels with paerser (traefik pkg/config/label/label.go
// DecodeConfiguration → github.com/traefik/paerser parser.Decode; traefik go.mod pins paerser v0.2.x):
// - parser/labels_decode.go DecodeToNode: a key is split on "."; an empty part, or a part that starts with "[",
//   is an error; `domains[0]` is split into `domains` + `[0]` (a slice-of-struct element). Siblings are merged
//   case-insensitively (containsNode uses strings.EqualFold).
// - parser/nodes_metadata.go findTypedField: a part names a struct field case-insensitively, so we write the
//   lower-case form Traefik's docs use (`entrypoints`, `certresolver`); a map key (a router or header name) is
//   kept verbatim (element_fill.go setMap uses child.Name). A pointer-to-struct field tagged `label:"allowEmpty"`
//   (Router.TLS, Middleware.Compress) is enabled by the value `true` alone; any other struct needs a child.
// - parser/element_fill.go setSlice/makeSlice: a list of scalars is ONE value split on "," with every element
//   strings.TrimSpace'd. There is no escape for labels, so an element holding "," or outer spaces cannot be written.

/** Why a value cannot be written as labels; the caller lists it and references the object elsewhere. */
export type Unexpressible = string;

const isScalar = (v: unknown): v is string | number | boolean =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean";

/** A map key or struct field as one key part: no "." (the separator) and no brackets (slice syntax). */
const PART_RE = /^[^.[\]]+$/;

/**
 * Appends `key=value` labels for `value` under `key` to `out`. `mapFields` names the fields whose members are map
 * keys (kept verbatim) rather than struct fields (lower-cased). Returns why it cannot be expressed, or undefined.
 */
export function flattenInto(
  key: string,
  value: unknown,
  mapFields: ReadonlySet<string>,
  out: [string, string][],
  isMap = false,
): Unexpressible | undefined {
  if (isScalar(value)) {
    out.push([key, String(value)]);
    return undefined;
  }
  if (Array.isArray(value)) {
    return flattenList(key, value, mapFields, out);
  }
  if (value === null || typeof value !== "object") {
    return `${key} has no label form`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) {
    // Only allowEmpty fields are rendered empty (router `tls: {}`, `compress: {}`): `true` enables them.
    out.push([key, "true"]);
    return undefined;
  }
  const seen = new Set<string>();
  for (const [field, member] of entries) {
    const part = isMap ? field : field.toLowerCase();
    if (!PART_RE.test(part)) {
      return `${key}: the name ${JSON.stringify(field)} cannot be a label key part (it holds "." or brackets)`;
    }
    const folded = part.toLowerCase();
    if (seen.has(folded)) {
      return `${key}: two names differ only in case (${JSON.stringify(field)}), and Traefik merges label key parts case-insensitively`;
    }
    seen.add(folded);
    const why = flattenInto(`${key}.${part}`, member, mapFields, out, mapFields.has(field));
    if (why !== undefined) {
      return why;
    }
  }
  return undefined;
}

function flattenList(
  key: string,
  items: readonly unknown[],
  mapFields: ReadonlySet<string>,
  out: [string, string][],
): Unexpressible | undefined {
  if (items.length === 0) {
    return `${key} is an empty list`; // never rendered (Traefik rejects empty lists)
  }
  if (items.every(isScalar)) {
    const values = items.map(String);
    const bad = values.find((v) => v === "" || v.includes(",") || v.trim() !== v);
    if (bad !== undefined) {
      return `${key}: the list element ${JSON.stringify(bad)} holds a comma or outer spaces, and Traefik splits label lists on "," and trims each element`;
    }
    out.push([key, values.join(", ")]); // as paerser's own encoder writes lists (element_nodes.go setSliceValue)
    return undefined;
  }
  for (const [i, item] of items.entries()) {
    const why = flattenInto(`${key}[${i}]`, item, mapFields, out);
    if (why !== undefined) {
      return why;
    }
  }
  return undefined;
}
