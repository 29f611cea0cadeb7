/**
 * The checks' view of kiln's shared models: image references (src/oci/reference.ts), platforms
 * (src/oci/platform.ts) and "did you mean" (src/suggest.ts), in the shape the rules ask for
 * (undefined instead of an error). No parsing of its own lives here.
 */
import { closestWord } from '../../suggest.js';
import { hostPlatform, tryParsePlatform } from '../../oci/platform.js';
import { tryParseCanonicalReference, type ImageReference } from '../../oci/reference.js';
import type { Platform } from '../../oci/types.js';

export type { ImageReference, Platform };

/**
 * The reference as `reference.ParseNormalizedNamed` accepts it; undefined when the string is not
 * a valid reference (empty, uppercase repository, bad tag or digest, a bare 64-hex id, ...).
 */
export function parseImageReference(ref: string): ImageReference | undefined {
  const r = tryParseCanonicalReference(ref);
  return 'reference' in r ? r.reference : undefined;
}

/** The platform, as the one platform parser reads it; undefined when invalid. */
export function parsePlatform(spec: string, host: Platform = hostPlatform()): Platform | undefined {
  const r = tryParsePlatform(spec, host);
  return 'platform' in r ? r.platform : undefined;
}

export { formatPlatform, hostPlatform } from '../../oci/platform.js';

/** The closest option within edit distance 2 (BuildKit's suggest threshold), or undefined; none on an exact match. */
export function suggest(value: string, options: Iterable<string>): string | undefined {
  return closestWord(value, options);
}

/** Go's %q for the plain strings that appear in messages. */
export function quote(s: string): string {
  return JSON.stringify(s);
}
