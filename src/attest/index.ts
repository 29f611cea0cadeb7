/**
 * Reading attestations back: the attestation manifests of a stored image (BuildKit's layout,
 * attach.ts), their statements, and `imageAttestations`, the library command behind
 * `kiln attestations`.
 */
import { KilnError } from '../errors.js';
import { displayName } from '../oci/reference.js';
import { formatPlatform, platformMatches } from '../oci/platform.js';
import { resolveByImageId } from '../oci/image.js';
import { ContentStore } from '../oci/store.js';
import type { Provider, RefStore } from '../oci/content.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { isIndexType } from '../oci/walk.js';
import { isAttestationEntry, REFERENCE_DIGEST_ANNOTATION } from './attach.js';
import { IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, statementProblems, type Statement } from './intoto.js';

export interface AttestationLayer {
  descriptor: Descriptor;
  /** From the layer's annotation (the statement says the same). */
  predicateType: string;
}

export interface ImageAttestations {
  /** The attestation manifest's entry in the index. */
  manifest: Descriptor;
  /** The platform manifest it attests ("sha256:…"). */
  subject: string;
  /** That manifest's platform, from its index entry. */
  platform?: Platform;
  layers: AttestationLayer[];
}

/**
 * The attestation manifests of the image `top` (none for a single manifest, or an index
 * without them), in index order. An attestation manifest the store lacks is skipped.
 */
export async function listAttestations(store: Provider, top: Descriptor): Promise<ImageAttestations[]> {
  if (!isIndexType(top.mediaType)) return [];
  const index = await store.readJSON<ImageIndex>(top.digest);
  const out: ImageAttestations[] = [];
  for (const entry of index.manifests ?? []) {
    if (!isAttestationEntry(entry) || !(await store.hasBlob(entry.digest))) continue;
    const subject = entry.annotations?.[REFERENCE_DIGEST_ANNOTATION] ?? '';
    const manifest = await store.readJSON<ImageManifest>(entry.digest);
    const layers = (manifest.layers ?? [])
      .filter((l) => l.mediaType === IN_TOTO_MEDIA_TYPE)
      .map((l) => ({ descriptor: l, predicateType: l.annotations?.[PREDICATE_TYPE_ANNOTATION] ?? '' }));
    out.push({ manifest: entry, subject, platform: index.manifests.find((m) => m.digest === subject)?.platform, layers });
  }
  return out;
}

/** One statement, read and checked against the in-toto Statement v1 rules. */
export async function readStatement(store: Provider, layer: Descriptor): Promise<Statement> {
  const value = await store.readJSON<unknown>(layer.digest).catch((e: unknown) => {
    throw new KilnError(`attestation ${layer.digest} is not JSON: ${(e as Error).message}`, { code: 'invalid', cause: e });
  });
  const problems = statementProblems(value);
  if (problems.length) throw new KilnError(`attestation ${layer.digest} is not an in-toto statement: ${problems.join('; ')}`, { code: 'invalid' });
  return value as Statement;
}

export interface AttestationsOptions {
  /** Only these platforms' attestations. */
  platform?: Platform;
  /** Only statements of this predicate type (e.g. https://slsa.dev/provenance/v1). */
  predicateType?: string;
  /** Read each statement too. */
  statements?: boolean;
}

export interface AttestationRow {
  platform: string;
  /** The platform manifest. */
  subject: string;
  /** The attestation manifest. */
  manifest: string;
  predicateType: string;
  digest: string;
  size: number;
  statement?: Statement;
}

/** The stored image a name, digest or image id names (its top document). */
async function resolveStored(store: Provider & RefStore, ref: string): Promise<Descriptor> {
  const d = (await store.resolve(ref)) ?? (await resolveByImageId(store, ref));
  if (!d) throw new KilnError(`image ${displayName(ref)} not found in the store`, { code: 'not-found', hint: 'kiln images lists what the store holds; kiln pull fetches an image with its attestations' });
  return d;
}

/** The attestations of a stored image, one row per statement (`kiln attestations`). */
export async function imageAttestations(root: string, ref: string, opts: AttestationsOptions = {}): Promise<{ name: string; descriptor: Descriptor; rows: AttestationRow[] }> {
  const store = await ContentStore.open(root);
  const descriptor = await resolveStored(store, ref);
  const rows: AttestationRow[] = [];
  for (const a of await listAttestations(store, descriptor)) {
    if (opts.platform && !platformMatches(opts.platform, a.platform)) continue;
    for (const l of a.layers) {
      if (opts.predicateType && l.predicateType !== opts.predicateType) continue;
      rows.push({
        platform: a.platform ? formatPlatform(a.platform) : 'unknown',
        subject: a.subject,
        manifest: a.manifest.digest,
        predicateType: l.predicateType,
        digest: l.descriptor.digest,
        size: l.descriptor.size,
        ...(opts.statements ? { statement: await readStatement(store, l.descriptor) } : {}),
      });
    }
  }
  return { name: displayName(ref), descriptor, rows };
}
