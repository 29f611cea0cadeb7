import semver from 'semver';

/**
 * Go module versions (golang.org/x/mod/semver): semantic versions with a "v" prefix, where
 * "v1" and "v1.2" stand for v1.0.0 and v1.2.0; "+incompatible" is build metadata and does not
 * order; pseudo-versions (v0.0.0-20191109021931-daa7c04131f5, v1.2.4-0.2019…) are pre-releases
 * and order as semver orders them. OSV's Go ecosystem writes versions without the "v", and the
 * standard library's as "1.21.5"; toolchains say "go1.21.5": all three are accepted.
 * Invalid versions order before every valid one and equal each other, as in x/mod/semver.
 */
export function parseGo(version: string): semver.SemVer | undefined {
  let v = version.trim();
  if (v.startsWith('go')) v = v.slice(2);
  if (v.startsWith('v')) v = v.slice(1);
  // shorthands: 1 → 1.0.0, 1.2 → 1.2.0, also before a pre-release (go1.21rc2 → 1.21.0-rc2)
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(.*)$/.exec(v);
  if (m === null) return undefined;
  let tail = m[4];
  if (m[3] === undefined && /^[a-z]/i.test(tail)) tail = `-${tail}`;
  const full = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${tail}`;
  return semver.parse(full) ?? undefined;
}

export function compareGo(a: string, b: string): number {
  const x = parseGo(a);
  const y = parseGo(b);
  if (x === undefined || y === undefined) return x === y ? 0 : x === undefined ? -1 : 1;
  return x.compare(y);
}
