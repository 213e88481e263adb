/** Returns a copy with every object's keys sorted, recursively. Arrays keep their order (chains are behaviour). */
export function canonical<T>(value: T): T {
  if (Array.isArray(value)) {
    return value.map((v) => canonical(v)) as T;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) {
        out[key] = canonical(v);
      }
    }
    return out as T;
  }
  return value;
}
