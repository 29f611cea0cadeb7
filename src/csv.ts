/** buildx's comma-separated option lists (--mount, --secret, -o, --cache-to …): one parser for all of them. */

/**
 * Splits a comma-separated list of fields as Go's csv reader does for one record: a field may
 * be double-quoted (holding commas; `""` is a quote), empty fields are dropped.
 */
export function splitCsvFields(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"') {
      if (quoted && value[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim()).filter(Boolean);
}
