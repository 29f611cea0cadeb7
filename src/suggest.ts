/**
 * kiln's one edit distance and "did you mean" (the Dockerfile parser and checks, the frontend's
 * flags, mounts and stage names, platforms), with BuildKit's rules: the candidate at the smallest
 * Levenshtein distance below 3 wins (the first one on a tie); an exact match means the
 * error is not a typo, so nothing is suggested. Case-insensitive searches answer in the
 * case the word was written in (all lower or all upper), as BuildKit's do.
 */

/** Plain Levenshtein distance (insertions, deletions, substitutions), by code unit. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

function matchCase(candidate: string, written: string): string {
  if (written === written.toLowerCase()) return candidate.toLowerCase();
  if (written === written.toUpperCase()) return candidate.toUpperCase();
  return candidate;
}

/** The candidate closest to `word`, if it is close enough to be a likely typo. */
export function closestWord(word: string, candidates: Iterable<string>, caseSensitive = true): string | undefined {
  const norm = (s: string) => (caseSensitive ? s : s.toLowerCase());
  const w = norm(word);
  let best: string | undefined;
  let bestDist = 3;
  for (const c of candidates) {
    const cn = norm(c);
    if (cn === w) return undefined;
    const d = levenshtein(w, cn);
    if (d < bestDist) {
      best = caseSensitive ? c : matchCase(cn, word);
      bestDist = d;
    }
  }
  return best;
}

/** `message`, with BuildKit's " (did you mean X?)" when `word` is a likely typo of a candidate. */
export function withSuggestion(message: string, word: string, candidates: Iterable<string>, caseSensitive = true): string {
  const near = closestWord(word, candidates, caseSensitive);
  return near === undefined ? message : `${message} (did you mean ${near}?)`;
}
