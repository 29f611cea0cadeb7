import semver from 'semver';
import * as pep440 from '@renovatebot/pep440';
import type { Ecosystem } from '../../sbom/types.js';
import { compareApk } from './apk.js';
import { compareDpkg } from './dpkg.js';
import { compareGo } from './go.js';
import { compareMaven } from './maven.js';

export { compareApk, validApk } from './apk.js';
export { compareDpkg, parseDpkgVersion } from './dpkg.js';
export { compareGo } from './go.js';
export { compareMaven } from './maven.js';

const cmpStr = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * npm: node-semver's order (loose parsing, as npm reads installed package.json versions).
 * A version semver cannot read orders before every valid one (then by its text).
 */
export function compareNpm(a: string, b: string): number {
  const x = semver.parse(a, { loose: true });
  const y = semver.parse(b, { loose: true });
  if (x === null || y === null) return x === y ? cmpStr(a, b) : x === null ? -1 : 1;
  return x.compare(y);
}

/** PyPI: PEP 440 (epochs, pre/post/dev releases, local versions), via @renovatebot/pep440. */
export function comparePypi(a: string, b: string): number {
  const x = pep440.valid(a) !== null;
  const y = pep440.valid(b) !== null;
  if (!x || !y) return x === y ? cmpStr(a, b) : !x ? -1 : 1;
  return Math.sign(pep440.compare(a, b));
}

/** Compares two versions in the order of the package's ecosystem: negative, zero or positive. */
export function compareVersions(ecosystem: Ecosystem, a: string, b: string): number {
  switch (ecosystem) {
    case 'deb':
      return compareDpkg(a, b);
    case 'apk':
      return compareApk(a, b);
    case 'npm':
      return compareNpm(a, b);
    case 'pypi':
      return comparePypi(a, b);
    case 'golang':
      return compareGo(a, b);
    case 'maven':
      return compareMaven(a, b);
  }
}
