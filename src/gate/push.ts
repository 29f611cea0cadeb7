/**
 * The gate's push: the image goes to each registry name in an order that leaves no tag behind
 * a failure, and its signature signs the digest the registry will hold.
 *
 * The store keeps the layers a build made uncompressed, and a push gzips them (registry/push.ts),
 * so the manifest a registry receives is not the local one. Here the pushed form is made first,
 * in the store (export/convert.ts: the layers' gzip variants, the manifests and index naming
 * them), so its digest is known before anything is sent. Then, for every name:
 *   1. blobs and manifests by digest (pushImage to REPO@DIGEST puts no tag);
 *   2. the signatures (cosign's `sha256-<hex>.sig` tags) of that digest and of each attestation
 *      manifest of the index;
 *   3. the tags, last, once every name has its blobs, manifests and signatures.
 * A failure before step 3 leaves untagged content in a registry (its GC may collect it) and no
 * tag naming an unsigned image.
 */
import { KilnError } from '../errors.js';
import { convertImage, persistConverted } from '../export/convert.js';
import { parseCanonicalReference, familiarRepository } from '../oci/reference.js';
import type { ContentStore } from '../oci/store.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { isIndexType } from '../oci/walk.js';
import { pushImage, type PushOptions, type PushResult } from '../registry/push.js';
import type { RemoteRepository } from '../registry/types.js';
import { cosignRepositoryName } from '../sign/index.js';
import { isAttestationManifest } from '../oci/image.js';
import type { SigningKey } from '../sign/keys.js';
import { pushSignature, signatureArtifact, type PushedSignature } from '../sign/sign.js';

export interface SignedPushOptions extends Pick<PushOptions, 'progress' | 'warn' | 'concurrency' | 'chunkSize' | 'signal'> {
  store: ContentStore;
  client: { repository(ref: string): RemoteRepository };
  /** The image (a manifest or an index) in the store. */
  image: Descriptor;
  /** "host/repo:tag" names (no tag: latest). */
  names: string[];
  /** Signs the pushed image (and its attestation manifests) when given. */
  key?: SigningKey;
  /** Claims in every signature payload's "optional" section. */
  annotations?: Record<string, string>;
  /** Called between the steps (tests stop a push there); a throw stops the push. */
  step?: (step: 'pushed' | 'signed' | 'tagged', name: string) => void | Promise<void>;
}

export interface SignedPushResult {
  /** The pushed form's descriptor: what every name holds. */
  descriptor: Descriptor;
  /** "host/repo:tag@sha256:…" per name. */
  references: string[];
  pushes: PushResult[];
  signatures: PushedSignature[];
  warnings: string[];
}

/** The image as the registry will hold it: plain layers gzipped, the documents naming them written to the store. */
export async function pushedForm(store: ContentStore, image: Descriptor): Promise<Descriptor> {
  return persistConverted(store, await convertImage(store, image, { compression: { compression: 'gzip' } }));
}

/** The attestation manifests (BuildKit's form) an index lists; none for a manifest. */
async function attestationDigests(store: ContentStore, top: Descriptor): Promise<string[]> {
  if (!isIndexType(top.mediaType)) return [];
  const index = await store.readJSON<ImageIndex>(top.digest);
  return index.manifests.filter(isAttestationManifest).map((m) => m.digest);
}

/** Pushes, signs and tags, in that order (see the module comment). */
export async function pushSigned(opts: SignedPushOptions): Promise<SignedPushResult> {
  if (opts.names.length === 0) throw new KilnError('nothing to push to: the image has no name', { code: 'invalid', hint: 'name it with -t REGISTRY/REPOSITORY:TAG' });
  const top = await pushedForm(opts.store, opts.image);
  const attestations = opts.key ? await attestationDigests(opts.store, top) : [];
  const targets = opts.names.map((name) => {
    const ref = parseCanonicalReference(name);
    if (ref.digest !== undefined && ref.digest !== top.digest) {
      throw new KilnError(`${name} names digest ${ref.digest}, but the image pushes as ${top.digest}`, { code: 'invalid', hint: 'name it by tag' });
    }
    return { name, ref, tag: ref.digest !== undefined ? undefined : (ref.tag ?? 'latest'), repo: opts.client.repository(ref.repository) };
  });
  const pushes: PushResult[] = [];
  for (const t of targets) {
    pushes.push(
      await pushImage({
        store: opts.store,
        client: opts.client,
        source: top,
        ref: `${t.ref.repository}@${top.digest}`,
        progress: opts.progress,
        warn: opts.warn,
        concurrency: opts.concurrency,
        chunkSize: opts.chunkSize,
        signal: opts.signal,
      }),
    );
    if (pushes[pushes.length - 1].digest !== top.digest) {
      // pushImage pushes a stored gzip image byte for byte: anything else is a bug to surface, not to sign
      throw new KilnError(`${t.name}: the registry got ${pushes[pushes.length - 1].digest}, not ${top.digest}; nothing was tagged`, { code: 'failed' });
    }
    await opts.step?.('pushed', t.name);
  }
  const signatures: PushedSignature[] = [];
  const warnings: string[] = [];
  if (opts.key) {
    for (const t of targets) {
      const identity = cosignRepositoryName(t.ref);
      for (const digest of [top.digest, ...attestations]) {
        if (opts.signal?.aborted) throw new KilnError(`push to ${t.name} interrupted before its tag was put`, { code: 'cancelled', exitCode: 130 });
        const pushed = await pushSignature(t.repo, signatureArtifact(digest, identity, opts.key, opts.annotations));
        if (pushed.referrerError) warnings.push(`no OCI 1.1 referrer for ${digest} (the ${pushed.tag} tag was written): ${pushed.referrerError}`);
        signatures.push(pushed);
      }
      await opts.step?.('signed', t.name);
    }
  }
  const bytes = await opts.store.readBlob(top.digest);
  const mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? top.mediaType;
  const references: string[] = [];
  for (const t of targets) {
    if (opts.signal?.aborted) throw new KilnError(`push to ${t.name} interrupted before its tag was put`, { code: 'cancelled', exitCode: 130 });
    if (t.tag !== undefined) await t.repo.putManifest(t.tag, { mediaType, bytes });
    references.push(`${familiarRepository(t.ref.repository)}${t.tag !== undefined ? `:${t.tag}` : ''}@${top.digest}`);
    await opts.step?.('tagged', t.name);
  }
  return { descriptor: top, references, pushes, signatures, warnings };
}
