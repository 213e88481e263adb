/** Code-unit order (what `<` compares), not locale order: the same on every machine, so rendered bytes are too. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders rows by id: `rows.sort(byId)`. */
export function byId(a: { readonly id: string }, b: { readonly id: string }): number {
  return compareStrings(a.id, b.id);
}
