/**
 * Deterministic JSON for content-addressed documents (manifests, configs, indexes).
 *
 * Rule: object keys are written in the order they were inserted into the object (JavaScript's
 * own property order), with no whitespace; `undefined` members are dropped as JSON.stringify
 * does. The same object built by the same code therefore always serialises to the same bytes.
 * We do not sort keys: docker and BuildKit write struct-field order (mediaType before config,
 * architecture before os, ...), and keeping the insertion order lets our writers choose the
 * familiar order, while integer-like keys come first as in any JavaScript object.
 * Non-finite numbers are rejected because JSON cannot carry them.
 */
export function canonicalJSON(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      throw new Error(`canonicalJSON: cannot encode non-finite number ${v}`);
    }
    if (typeof v === 'bigint') throw new Error('canonicalJSON: cannot encode bigint');
    return v;
  });
}
