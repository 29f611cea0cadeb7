/**
 * Debian version order, as dpkg's `verrevcmp` defines it (deb-version(7)):
 * `[epoch:]upstream[-revision]`; the epoch compares as a number, then the upstream version and
 * the revision each compare part by part: a run of non-digits, character by character, where
 * `~` sorts before everything (even the end of the string), then the end, then letters, then
 * every other character; then a run of digits, as a number.
 */

export interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** Splits a version as dpkg's parseversion does: the epoch before the first ':', the revision after the last '-'. */
export function parseDpkgVersion(version: string): DpkgVersion {
  let rest = version.trim();
  let epoch = 0;
  const colon = rest.indexOf(':');
  if (colon >= 0) {
    const e = rest.slice(0, colon);
    epoch = /^\d+$/.test(e) ? Number(e) : 0;
    rest = rest.slice(colon + 1);
  }
  const hyphen = rest.lastIndexOf('-');
  if (hyphen < 0) return { epoch, upstream: rest, revision: '' };
  return { epoch, upstream: rest.slice(0, hyphen), revision: rest.slice(hyphen + 1) };
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** The weight of one character in a non-digit run (0 stands for the end of the string, and for a digit). */
function order(c: number | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 0x7e) return -1; // '~'
  return c + 256;
}

/** dpkg's verrevcmp over the bytes of two version parts (upstream or revision). */
export function verrevcmp(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    while ((i < x.length && !isDigit(x[i])) || (j < y.length && !isDigit(y[j]))) {
      const ac = order(x[i]);
      const bc = order(y[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (x[i] === 0x30) i++;
    while (y[j] === 0x30) j++;
    let firstDiff = 0;
    while (i < x.length && j < y.length && isDigit(x[i]) && isDigit(y[j])) {
      if (firstDiff === 0) firstDiff = x[i] - y[j];
      i++;
      j++;
    }
    if (i < x.length && isDigit(x[i])) return 1;
    if (j < y.length && isDigit(y[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** Compares two Debian versions: negative, zero or positive, as `dpkg --compare-versions` orders them. */
export function compareDpkg(a: string, b: string): number {
  const va = parseDpkgVersion(a);
  const vb = parseDpkgVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch < vb.epoch ? -1 : 1;
  return Math.sign(verrevcmp(va.upstream, vb.upstream)) || Math.sign(verrevcmp(va.revision, vb.revision));
}
