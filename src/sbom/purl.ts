/**
 * Package URLs (github.com/package-url/purl-spec) for catalogued packages, encoded by
 * packageurl-js: OS packages carry the distro qualifier (and arch; deb the source package as
 * `upstream`), npm scopes become `%40scope`, PyPI names are normalised (PEP 503), Go modules
 * split at the last '/', Maven is group/artifact.
 */
import { PackageURL } from 'packageurl-js';
import type { Found } from './ecosystems.js';
import type { OsRelease } from './types.js';

/** PEP 503: lower case, runs of '-', '_' and '.' as one '-'. */
export function normalisePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

export function purlOf(p: Found, os: OsRelease | undefined): string {
  const distro = os ? `${os.id}-${os.versionId ?? os.versionCodename ?? ''}`.replace(/-$/, '') : undefined;
  const qualifiers = (extra: Record<string, string | undefined>): Record<string, string> | undefined => {
    const q: Record<string, string> = {};
    for (const [k, v] of Object.entries(extra)) if (v) q[k] = v;
    return Object.keys(q).length ? q : undefined;
  };
  switch (p.ecosystem) {
    case 'deb': {
      const upstream = p.sourceName ? (p.sourceVersion && p.sourceVersion !== p.version ? `${p.sourceName}@${p.sourceVersion}` : p.sourceName) : undefined;
      return new PackageURL('deb', os?.id ?? 'debian', p.name, p.version, qualifiers({ arch: p.arch, distro, upstream }), undefined).toString();
    }
    case 'apk':
      return new PackageURL('apk', os?.id ?? 'alpine', p.name, p.version, qualifiers({ arch: p.arch, distro, upstream: p.sourceName }), undefined).toString();
    case 'npm': {
      const slash = p.name.startsWith('@') ? p.name.indexOf('/') : -1;
      return new PackageURL('npm', slash > 0 ? p.name.slice(0, slash) : undefined, slash > 0 ? p.name.slice(slash + 1) : p.name, p.version, undefined, undefined).toString();
    }
    case 'pypi':
      return new PackageURL('pypi', undefined, normalisePythonName(p.name), p.version, undefined, undefined).toString();
    case 'golang': {
      const slash = p.name.lastIndexOf('/');
      return new PackageURL('golang', slash > 0 ? p.name.slice(0, slash) : undefined, slash > 0 ? p.name.slice(slash + 1) : p.name, p.version, undefined, undefined).toString();
    }
    case 'maven': {
      const artifact = p.groupId && p.name.startsWith(`${p.groupId}:`) ? p.name.slice(p.groupId.length + 1) : p.name;
      return new PackageURL('maven', p.groupId, artifact, p.version, undefined, undefined).toString();
    }
  }
}
