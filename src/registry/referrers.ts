/**
 * The OCI 1.1 referrers tag schema, for registries without the referrers API: the manifests
 * whose subject is sha256:<hex> are listed in an image index tagged sha256-<hex>.
 */
import { digestHex } from '../oci/digest.js';
import { MediaType, type Descriptor } from '../oci/types.js';

export type Referrer = Descriptor & { artifactType?: string };

/** The fallback tag of a subject digest: "sha256-<hex>". */
export function referrersTag(subject: string): string {
  return `sha256-${digestHex(subject)}`;
}

/**
 * The index `current` (its bytes, undefined when there is none yet) with `desc` added, or
 * undefined when it already lists that digest (nothing to write).
 */
export function withReferrer(current: Buffer | undefined, desc: Referrer): Buffer | undefined {
  let manifests: Referrer[] = [];
  if (current) {
    try {
      const parsed = JSON.parse(current.toString('utf8')) as { manifests?: Referrer[] };
      if (Array.isArray(parsed.manifests)) manifests = parsed.manifests;
    } catch {
      // an unreadable fallback index is replaced
    }
  }
  if (manifests.some((m) => m.digest === desc.digest)) return undefined;
  const entry: Referrer = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.artifactType) entry.artifactType = desc.artifactType;
  if (desc.annotations) entry.annotations = desc.annotations;
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...manifests, entry] }));
}
