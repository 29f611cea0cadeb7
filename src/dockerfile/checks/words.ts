import { hostPlatform } from '../../platform.js';
/**
 * Small lexical helpers the check rules need: image reference validation
 * (distribution/reference grammar), platform strings, and "did you mean".
 */

// distribution/reference grammar
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const HOST = `(?:${DOMAIN_NAME}|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REMOTE = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REMOTE_RE = new RegExp(`^${REMOTE}$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);

export interface ImageReference {
  /** Registry host when written, else undefined (Docker Hub). */
  domain?: string;
  /** Repository path without the domain. */
  path: string;
  tag?: string;
  digest?: string;
}

/**
 * Parses an image reference the way `reference.ParseNormalizedNamed` accepts it;
 * undefined when the string is not a valid reference (empty, uppercase repository,
 * bad tag or digest, a bare 64-hex id, ...).
 */
export function parseImageReference(ref: string): ImageReference | undefined {
  if (ref === '' || /^[a-f0-9]{64}$/.test(ref)) return undefined;
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) return undefined;
  }
  let domain: string | undefined;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    // same rule as splitDockerDomain: a first component is a registry host when it has a dot
    // or port, is "localhost", or has uppercase letters
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      rest = rest.slice(slash + 1);
      if (!DOMAIN_RE.test(domain)) return undefined;
    }
  }
  if (!REMOTE_RE.test(rest)) return undefined;
  if ((domain ? domain.length + 1 : 0) + rest.length > 255) return undefined;
  return { domain, path: rest, tag, digest };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'illumos', 'ios', 'js', 'linux',
  'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows',
]);

function normalizeArch(arch: string, variant?: string): { architecture: string; variant?: string } {
  switch (arch) {
    case 'i386':
      return { architecture: '386' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return { architecture: 'amd64', variant: variant === 'v1' ? undefined : variant };
    case 'aarch64':
    case 'arm64':
      return { architecture: 'arm64', variant: variant === 'v8' || variant === '8' ? undefined : variant };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      return { architecture: 'arm', variant: variant ?? 'v7' };
    default:
      return { architecture: arch, variant };
  }
}

/** Parses "os/arch[/variant]", "os" or "arch" like containerd's platforms.Parse; undefined when invalid. */
export function parsePlatform(spec: string, host: Platform = hostPlatform()): Platform | undefined {
  const parts = spec.toLowerCase().split('/');
  if (parts.some((p) => p === '' || !/^[a-z0-9_.-]+$/.test(p))) return undefined;
  if (parts.length === 1) {
    if (KNOWN_OS.has(parts[0])) return { os: parts[0], architecture: host.architecture, variant: host.variant };
    const a = normalizeArch(parts[0]);
    return { os: host.os, ...a };
  }
  if (parts.length > 3) return undefined;
  const a = normalizeArch(parts[1], parts[2]);
  return { os: parts[0], ...a };
}

// the host platform and formatting are the shared ones
export { formatPlatform, hostPlatform } from '../../platform.js';

export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The closest option within edit distance 2 (BuildKit's suggest threshold), or undefined; none on an exact match. */
export function suggest(value: string, options: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const o of options) {
    if (o === value) return undefined;
    const d = levenshtein(value, o);
    if (d < bestDist) {
      bestDist = d;
      best = o;
    }
  }
  return best;
}

/** Go's %q for the plain strings that appear in messages. */
export function quote(s: string): string {
  return JSON.stringify(s);
}
