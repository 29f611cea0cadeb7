/**
 * cosign's signature image: the signed payload as a layer of an OCI image manifest, stored in
 * the signed image's repository under the tag `sha256-<hex of the signed digest>.sig` (cosign's
 * tag-based discovery: what cosign and skopeo's `use-sigstore-attachments` read). Documents are
 * written byte for byte as cosign (go-containerregistry) writes them:
 *
 * - layer: `application/vnd.dev.cosign.simplesigning.v1+json`, the payload bytes as they are,
 *   annotation `dev.cosignproject.cosign/signature` = base64 of the signature;
 * - config: `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":…}…],
 *   "os":"","rootfs":{"type":"layers","diff_ids":[<each layer's digest>]},"config":{}}`;
 * - manifest: OCI image manifest, fields schemaVersion, mediaType, config, layers.
 *
 * A second signature of the same digest is appended as another layer of that image (cosign
 * does the same; an identical signature is not added twice). Each signature is also written as
 * an OCI 1.1 referrer of the signed manifest, as `cosign sign --registry-referrers-mode=oci-1-1`
 * writes it (artifactType and config type `application/vnd.dev.cosign.artifact.sig.v1+json`,
 * `subject`): on a registry without the referrers API the client keeps the referrers tag index
 * (registry/referrers.ts). skopeo 1.9 reads only the `.sig` tag; cosign reads the tag by
 * default and the referrer with --experimental-oci11.
 */
import { KilnError } from '../errors.js';
import { digestHex, digestOf } from '../oci/digest.js';
import { MediaType, type Descriptor } from '../oci/types.js';
import type { Referrer } from '../registry/referrers.js';
import type { RemoteRepository } from '../registry/types.js';
import { signBytes, type SigningKey } from './keys.js';
import { goJSON, SIMPLE_SIGNING_MEDIA_TYPE, simpleSigningPayload } from './payload.js';

export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** cosign's artifactType for a signature stored as an OCI 1.1 referrer. */
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';

/** One signature, ready to push: the payload, its signature and the signature image's documents. */
export interface SignatureArtifact {
  /** The signed manifest (or index) digest. */
  subject: string;
  /** The repository the payload names (critical.identity.docker-reference). */
  dockerReference: string;
  payload: Buffer;
  /** Base64 of the signature (DER ECDSA, or PKCS #1 v1.5 RSA) over `payload`. */
  signature: string;
  /** The payload layer's descriptor, the signature in its annotation. */
  layer: Descriptor;
  /** A signature image holding only this signature: config and manifest bytes with descriptors. */
  config: Buffer;
  configDescriptor: Descriptor;
  manifest: Buffer;
  manifestDescriptor: Descriptor;
}

/** The tag cosign stores the signatures of `digest` under: sha256-<hex>.sig. */
export function signatureTag(digest: string): string {
  return `sha256-${digestHex(digest)}.sig`;
}

function descriptorOf(mediaType: string, bytes: Buffer, annotations?: Record<string, string>): Descriptor {
  // go-containerregistry's field order: mediaType, size, digest, annotations
  return { mediaType, size: bytes.length, digest: digestOf(bytes), ...(annotations ? { annotations } : {}) };
}

/** The config go-containerregistry writes for an empty image with `layers` appended. */
export function signatureConfig(layers: Descriptor[]): Buffer {
  const zero = '0001-01-01T00:00:00Z';
  return Buffer.from(
    goJSON({
      architecture: '',
      created: zero,
      history: layers.map(() => ({ created: zero })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
}

function orderedDescriptor(d: Descriptor): Record<string, unknown> {
  const out: Record<string, unknown> = { mediaType: d.mediaType, size: d.size, digest: d.digest };
  if (d.annotations && Object.keys(d.annotations).length > 0) {
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(d.annotations).sort()) sorted[k] = d.annotations[k];
    out.annotations = sorted;
  }
  return out;
}

/** The signature image manifest; with `referrer`, cosign's OCI 1.1 form (subject, artifactType). */
export function signatureManifest(config: Descriptor, layers: Descriptor[], referrer?: { subject: Descriptor }): Buffer {
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: orderedDescriptor(referrer ? { ...config, mediaType: SIGNATURE_ARTIFACT_TYPE } : config),
    layers: layers.map(orderedDescriptor),
  };
  if (referrer) {
    doc.subject = orderedDescriptor({ mediaType: referrer.subject.mediaType, size: referrer.subject.size, digest: referrer.subject.digest });
    doc.artifactType = SIGNATURE_ARTIFACT_TYPE;
  }
  return Buffer.from(goJSON(doc));
}

/**
 * Signs `manifestDigest` (an image manifest or index in `dockerReference`, a repository such as
 * "registry.local:5000/team/app") with `key`: cosign's payload with `annotations` as its
 * optional claims, and the signature image holding it.
 */
export function signatureArtifact(manifestDigest: string, dockerReference: string, key: SigningKey, annotations?: Record<string, string>): SignatureArtifact {
  if (!/^sha256:[a-f0-9]{64}$/.test(manifestDigest)) {
    throw new KilnError(`cannot sign "${manifestDigest}": not a sha256 manifest digest`, { code: 'invalid', hint: 'sign what a registry tag resolves to (sha256:<64 hex>)' });
  }
  const payload = simpleSigningPayload(manifestDigest, dockerReference, annotations);
  const signature = signBytes(key, payload).toString('base64');
  const layer = descriptorOf(SIMPLE_SIGNING_MEDIA_TYPE, payload, { [SIGNATURE_ANNOTATION]: signature });
  const config = signatureConfig([layer]);
  const configDescriptor = descriptorOf(MediaType.ociConfig, config);
  const manifest = signatureManifest(configDescriptor, [layer]);
  return {
    subject: manifestDigest,
    dockerReference,
    payload,
    signature,
    layer,
    config,
    configDescriptor,
    manifest,
    manifestDescriptor: descriptorOf(MediaType.ociManifest, manifest),
  };
}

export interface PushedSignature {
  subject: string;
  /** The signature tag (sha256-<hex>.sig) and the manifest it now names. */
  tag: string;
  manifest: Descriptor;
  /** How many signatures the image under the tag holds now (this one included). */
  signatures: number;
  /** False when an identical signature was there already. */
  added: boolean;
  /** The OCI 1.1 referrer manifest written for this signature, when the registry took it. */
  referrer?: Referrer;
  /** Why no referrer was written (the tag was), when the registry refused it. */
  referrerError?: string;
}

async function pushBytes(repo: RemoteRepository, desc: Descriptor, bytes: Buffer): Promise<void> {
  await repo.pushBlob(desc, async function* () {
    yield bytes;
  });
}

/** The layers of the signature image under `tag`, empty when there is none. */
async function existingLayers(repo: RemoteRepository, tag: string): Promise<Descriptor[]> {
  if (!(await repo.headManifest(tag))) return [];
  const current = await repo.getManifest(tag);
  let doc: { layers?: unknown };
  try {
    doc = JSON.parse(current.bytes.toString('utf8')) as { layers?: unknown };
  } catch {
    doc = {};
  }
  if (!Array.isArray(doc.layers)) {
    throw new KilnError(`${repo.host}/${repo.name}:${tag} is not a signature image (no layers)`, {
      code: 'conflict',
      hint: `something else holds cosign's signature tag; remove that tag to sign`,
    });
  }
  return doc.layers as Descriptor[];
}

/**
 * Uploads `artifact` into `repo` (the signed image's repository): the payload and config blobs,
 * then the signature image under the `.sig` tag (appending to the signatures already there),
 * then the OCI 1.1 referrer. Nothing is tagged unless every blob is in the registry.
 */
export async function pushSignature(repo: RemoteRepository, artifact: SignatureArtifact, options: { referrer?: boolean } = {}): Promise<PushedSignature> {
  const tag = signatureTag(artifact.subject);
  const layers = await existingLayers(repo, tag);
  const added = !layers.some((l) => l.digest === artifact.layer.digest && l.annotations?.[SIGNATURE_ANNOTATION] === artifact.signature);
  if (added) layers.push(artifact.layer);
  await pushBytes(repo, artifact.layer, artifact.payload);
  const config = signatureConfig(layers);
  const configDescriptor = descriptorOf(MediaType.ociConfig, config);
  await pushBytes(repo, configDescriptor, config);
  const manifest = signatureManifest(configDescriptor, layers);
  const manifestDescriptor = await repo.putManifest(tag, { mediaType: MediaType.ociManifest, bytes: manifest });
  const result: PushedSignature = { subject: artifact.subject, tag, manifest: manifestDescriptor, signatures: layers.length, added };
  if (options.referrer === false) return result;
  try {
    const subject = await repo.headManifest(artifact.subject);
    if (!subject) throw new KilnError(`${repo.host}/${repo.name} has no manifest ${artifact.subject}`, { code: 'not-found' });
    await pushBytes(repo, artifact.configDescriptor, artifact.config);
    const bytes = signatureManifest(artifact.configDescriptor, [artifact.layer], { subject });
    const referrer = await repo.putManifest(digestOf(bytes), { mediaType: MediaType.ociManifest, bytes });
    result.referrer = { ...referrer, artifactType: SIGNATURE_ARTIFACT_TYPE };
  } catch (e) {
    result.referrerError = (e as Error).message;
  }
  return result;
}
