import { closestWord } from '../suggest.js';
import { hostPlatform, tryParsePlatform } from '../../platform.js';
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

/** Parses "os/arch[/variant]", "os" or "arch" like containerd's platforms.Parse; undefined when invalid. */
export function parsePlatform(spec: string, host: Platform = hostPlatform()): Platform | undefined {
  const r = tryParsePlatform(spec, host);
  return 'platform' in r ? r.platform : undefined;
}

// the host platform and formatting are the shared ones
export { formatPlatform, hostPlatform } from '../../platform.js';

/** The closest option within edit distance 2 (BuildKit's suggest threshold), or undefined; none on an exact match. */
export function suggest(value: string, options: Iterable<string>): string | undefined {
  return closestWord(value, options);
}

/** Go's %q for the plain strings that appear in messages. */
export function quote(s: string): string {
  return JSON.stringify(s);
}
