/**
 * `kiln sign` and `kiln verify` as library commands: sign what a registry reference resolves to
 * (and, with `attestations`, each attestation manifest of its index), and verify those
 * signatures with a public key, with reasons a person understands when they do not hold.
 *
 * Keyless signing (Fulcio certificates, Rekor transparency log entries) needs those services on
 * the internet and is not done: signatures are made with a key pair, as `cosign sign --key`
 * with `--tlog-upload=false` makes them.
 */
import { readFile } from 'node:fs/promises';
import { errorCode, KilnError } from '../errors.js';
import { parseCanonicalReference, parseReference, type CanonicalReference } from '../oci/reference.js';
import { isAttestationManifest } from '../oci/image.js';
import { isIndexType } from '../oci/walk.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { registryClient } from '../registry/settings.js';
import type { RemoteRepository } from '../registry/types.js';
import { loadPrivateKey, loadPublicKey, verifyBytes, type SigningKey, type VerificationKey } from './keys.js';
import { MalformedPayloadError, parsePayload, SIMPLE_SIGNING_MEDIA_TYPE, type SimpleSigningPayload } from './payload.js';
import { MAX_SIGNATURES, pushSignature, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, signatureArtifact, signatureTag, type PushedSignature } from './sign.js';

const REMOTE_PREFIX = 'docker://';
/** A signature payload larger than this is not read (cosign's are a few hundred bytes). */
const MAX_PAYLOAD_BYTES = 1 << 20;

/** What a registry client is to these commands (settings.ts's RegistryClient is one). */
export interface RepositoryOpener {
  repository(ref: CanonicalReference | string): RemoteRepository;
}

/** A registry reference: docker://REF, or a name that has a registry host. */
export function registryReference(ref: string): CanonicalReference {
  const remote = ref.startsWith(REMOTE_PREFIX);
  const text = remote ? ref.slice(REMOTE_PREFIX.length) : ref;
  if (text === '') throw new KilnError(`${REMOTE_PREFIX} needs an image reference after it`, { code: 'invalid', hint: `write ${REMOTE_PREFIX}HOST/REPO:TAG` });
  if (!remote && parseReference(text).domain === undefined) {
    throw new KilnError(`"${ref}" names no registry: signatures live in a registry, beside the image`, {
      code: 'invalid',
      hint: `push the image (kiln push ${text} HOST/REPO:TAG) and sign HOST/REPO:TAG; docker://${text} means Docker Hub`,
    });
  }
  return parseCanonicalReference(text);
}

/** The repository as cosign's payload names it (go-containerregistry spells Docker Hub index.docker.io). */
export function cosignRepositoryName(ref: CanonicalReference): string {
  return `${ref.domain === 'docker.io' ? 'index.docker.io' : ref.domain}/${ref.path}`;
}

function sameRepository(a: string, b: CanonicalReference): boolean {
  try {
    return parseCanonicalReference(a).repository === b.repository;
  } catch {
    return false;
  }
}

interface Resolved {
  ref: CanonicalReference;
  repo: RemoteRepository;
  where: string;
  descriptor: Descriptor;
}

async function resolve(client: RepositoryOpener, input: string): Promise<Resolved> {
  const ref = registryReference(input);
  const repo = client.repository(ref);
  const where = `${ref.domain}/${ref.path}`;
  const wanted = ref.digest ?? ref.tag ?? 'latest';
  const descriptor = await repo.headManifest(wanted);
  if (!descriptor) {
    throw new KilnError(`${where} has no image ${wanted}`, { code: 'not-found', hint: 'check the name and tag (kiln push puts an image there)' });
  }
  return { ref, repo, where, descriptor };
}

/** The attestation manifests (BuildKit's form) of the index `top`, none for a single manifest. */
async function attestationManifests(r: Resolved): Promise<Descriptor[]> {
  if (!isIndexType(r.descriptor.mediaType)) return [];
  const index = JSON.parse((await r.repo.getManifest(r.descriptor.digest)).bytes.toString('utf8')) as ImageIndex;
  return (index.manifests ?? []).filter(isAttestationManifest);
}

/** A key file's text, or a KilnError naming the file. */
export async function readKeyFile(file: string, what: 'private key' | 'public key'): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new KilnError(`cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
      code: errorCode(e) ?? 'not-found',
      hint: what === 'private key' ? 'make one with kiln generate-key-pair' : 'give the .pub file kiln generate-key-pair wrote',
    });
  }
}

export interface SignImageOptions {
  root: string;
  /** docker://REF or HOST/REPO[:TAG|@DIGEST]. */
  ref: string;
  /** A key file (cosign's encrypted format, PKCS#8 or EC PEM), or a loaded key. */
  key: string | SigningKey;
  /** Decrypts an encrypted key file. */
  password?: string;
  /** Also sign every attestation manifest of the image's index. */
  attestations?: boolean;
  /** Claims in the payload's "optional" section (cosign sign -a KEY=VALUE). */
  annotations?: Record<string, string>;
  insecureRegistries?: string[];
  /** Default: registryClient(root) (docker's credentials, the root's insecure registries). */
  client?: RepositoryOpener;
}

export interface SignedManifest {
  kind: 'image' | 'attestation';
  digest: string;
  /** For an attestation manifest: the platform manifest it describes (vnd.docker.reference.digest). */
  describes?: string;
  pushed: PushedSignature;
}

export interface SignImageResult {
  /** The repository (HOST/REPO) the signatures were stored in. */
  repository: string;
  digest: string;
  signed: SignedManifest[];
  warnings: string[];
}

/** Signs the manifest (or index) `ref` names in its registry, and with `attestations` its attestation manifests. */
export async function signImage(opts: SignImageOptions): Promise<SignImageResult> {
  const key = typeof opts.key === 'string' ? loadPrivateKey(await readKeyFile(opts.key, 'private key'), opts.password, opts.key) : opts.key;
  const client = opts.client ?? registryClient({ root: opts.root, insecureRegistries: opts.insecureRegistries });
  const r = await resolve(client, opts.ref);
  const identity = cosignRepositoryName(r.ref);
  const targets: Array<{ kind: SignedManifest['kind']; digest: string; describes?: string }> = [{ kind: 'image', digest: r.descriptor.digest }];
  const warnings: string[] = [];
  if (opts.attestations) {
    const atts = await attestationManifests(r);
    if (atts.length === 0) warnings.push(`${r.where}@${r.descriptor.digest} has no attestation manifests: only the image was signed`);
    for (const a of atts) targets.push({ kind: 'attestation', digest: a.digest, describes: a.annotations?.['vnd.docker.reference.digest'] });
  }
  const signed: SignedManifest[] = [];
  for (const t of targets) {
    const pushed = await pushSignature(r.repo, signatureArtifact(t.digest, identity, key, opts.annotations));
    if (pushed.referrerError) warnings.push(`no OCI 1.1 referrer for ${t.digest} (the ${pushed.tag} tag was written): ${pushed.referrerError}`);
    signed.push({ kind: t.kind, digest: t.digest, ...(t.describes ? { describes: t.describes } : {}), pushed });
  }
  return { repository: r.where, digest: r.descriptor.digest, signed, warnings };
}

/** Why a verification failed, for code; the message says it for people. */
export type VerifyFailure = 'missing' | 'changed' | 'wrong-key' | 'other-image' | 'malformed';

export class VerificationError extends KilnError {
  constructor(
    readonly reason: VerifyFailure,
    message: string,
    hint?: string,
  ) {
    super(message, { code: 'failed', hint, exitCode: 1 });
    this.name = 'VerificationError';
  }
}

export interface VerifiedSignature {
  kind: 'image' | 'attestation';
  /** The manifest the signature names (and that the reference resolved to). */
  digest: string;
  payload: SimpleSigningPayload;
  /** The payload exactly as stored (what the signature is over). */
  payloadBytes: Buffer;
  signature: string;
  /** The payload layer's digest in the signature image. */
  layer: string;
}

export interface VerifyImageResult {
  repository: string;
  digest: string;
  verified: VerifiedSignature[];
}

export interface VerifyImageOptions {
  root: string;
  ref: string;
  /** A public key file (PEM), or a loaded key. */
  publicKey: string | VerificationKey;
  /** Also verify a signature of every attestation manifest of the image's index (all must be signed). */
  attestations?: boolean;
  insecureRegistries?: string[];
  client?: RepositoryOpener;
}

/**
 * Verifies the signatures of what `ref` names now: at least one signature under its `.sig` tag
 * must verify with the key over a payload that names this digest and this repository.
 */
export async function verifyImage(opts: VerifyImageOptions): Promise<VerifyImageResult> {
  const keyName = typeof opts.publicKey === 'string' ? opts.publicKey : 'the public key';
  const key = typeof opts.publicKey === 'string' ? loadPublicKey(await readKeyFile(opts.publicKey, 'public key'), opts.publicKey) : opts.publicKey;
  const client = opts.client ?? registryClient({ root: opts.root, insecureRegistries: opts.insecureRegistries });
  const r = await resolve(client, opts.ref);
  const verified = await verifyManifest(r, { kind: 'image', digest: r.descriptor.digest }, key, keyName);
  if (opts.attestations) {
    const atts = await attestationManifests(r);
    if (atts.length === 0) {
      throw new VerificationError('missing', `${r.where}@${r.descriptor.digest} has no attestation manifests to verify`, 'build with --sbom=true or --provenance to attach them, then kiln sign --attestations');
    }
    for (const a of atts) verified.push(...(await verifyManifest(r, { kind: 'attestation', digest: a.digest }, key, keyName)));
  }
  return { repository: r.where, digest: r.descriptor.digest, verified };
}

function simpleSigningLayers(bytes: Buffer): Descriptor[] {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { layers?: Descriptor[] };
    return Array.isArray(doc.layers) ? doc.layers.filter((l) => l?.mediaType === SIMPLE_SIGNING_MEDIA_TYPE) : [];
  } catch {
    return [];
  }
}

/**
 * The signature layers of `digest`: the image under its `.sig` tag (what cosign reads by
 * default), else the OCI 1.1 referrers of cosign's signature artifact type (what
 * `cosign sign --registry-referrers-mode=oci-1-1` writes alone); undefined when neither exists.
 */
async function signatureLayers(r: Resolved, digest: string): Promise<{ layers: Descriptor[]; from: string } | undefined> {
  const tag = signatureTag(digest);
  if (await r.repo.headManifest(tag)) return { layers: simpleSigningLayers((await r.repo.getManifest(tag)).bytes), from: `${r.where}:${tag}` };
  const referrers = (await r.repo.referrers(digest, SIGNATURE_ARTIFACT_TYPE).catch(() => [] as Descriptor[])).filter(
    (d) => (d as { artifactType?: string }).artifactType === SIGNATURE_ARTIFACT_TYPE,
  );
  if (referrers.length === 0) return undefined;
  const layers: Descriptor[] = [];
  for (const d of referrers) layers.push(...simpleSigningLayers((await r.repo.getManifest(d.digest)).bytes));
  return { layers, from: `the OCI 1.1 referrers of ${r.where}@${digest}` };
}

async function verifyManifest(r: Resolved, target: { kind: VerifiedSignature['kind']; digest: string }, key: VerificationKey, keyName: string): Promise<VerifiedSignature[]> {
  const tag = signatureTag(target.digest);
  const what = target.kind === 'image' ? `${r.where}@${target.digest}` : `the attestation manifest ${target.digest} of ${r.where}`;
  const found = await signatureLayers(r, target.digest);
  if (!found) {
    // a tag whose digest no signature names, in a repository holding signatures: it moved (a digest reference is just unsigned)
    const others = target.kind === 'image' && r.ref.digest === undefined ? (await r.repo.listTags().catch(() => [] as string[])).filter((t) => /^sha256-[a-f0-9]{64}\.sig$/.test(t) && t !== tag) : [];
    if (others.length > 0) {
      const named = others.slice(0, 3).map((t) => `sha256:${t.slice(7, 19)}…`).join(', ');
      throw new VerificationError(
        'changed',
        `${r.where}:${r.ref.tag ?? 'latest'} now points to ${target.digest}, which no signature names; the signatures in ${r.where} are for other manifests (${named}${others.length > 3 ? ', …' : ''}): the image changed after it was signed, or the tag was moved`,
        'verify the digest that was signed (REPO@sha256:…), or sign the new image if the change was meant',
      );
    }
    throw new VerificationError('missing', `${what} is not signed: ${r.where} has no signature tag ${tag} and no OCI 1.1 referrer signature`, 'sign it: kiln sign --key cosign.key REF');
  }
  const { layers, from } = found;
  if (layers.length === 0) throw new VerificationError('malformed', `${from} holds no cosign signature (no ${SIMPLE_SIGNING_MEDIA_TYPE} layer)`);
  if (layers.length > MAX_SIGNATURES) throw new VerificationError('malformed', `${from} holds ${layers.length} signatures, more than cosign's limit of ${MAX_SIGNATURES}`);
  const provider = r.repo.provider();
  const payloads = new Map<string, Buffer>();
  const verified: VerifiedSignature[] = [];
  const malformed: string[] = [];
  const otherImage: string[] = [];
  let wrongKey = 0;
  for (const [i, layer] of layers.entries()) {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (signature === undefined || layer.size > MAX_PAYLOAD_BYTES) {
      malformed.push(`signature ${i + 1} ${signature === undefined ? `has no ${SIGNATURE_ANNOTATION} annotation` : `has a ${layer.size}-byte payload`}`);
      continue;
    }
    // the same payload may carry several signatures (one blob, read once)
    const payloadBytes = payloads.get(layer.digest) ?? (await provider.readBlob(layer.digest));
    payloads.set(layer.digest, payloadBytes);
    if (!verifyBytes(key, payloadBytes, Buffer.from(signature, 'base64'))) {
      wrongKey++;
      continue;
    }
    let payload: SimpleSigningPayload;
    try {
      payload = parsePayload(payloadBytes);
    } catch (e) {
      if (!(e instanceof MalformedPayloadError)) throw e;
      malformed.push(`signature ${i + 1}: ${e.why}`);
      continue;
    }
    const digest = payload.critical.image['docker-manifest-digest'];
    const reference = payload.critical.identity['docker-reference'];
    if (digest !== target.digest) {
      otherImage.push(`signature ${i + 1} names ${digest}`);
      continue;
    }
    if (!sameRepository(reference, r.ref)) {
      otherImage.push(`signature ${i + 1} names the repository ${reference}`);
      continue;
    }
    verified.push({ kind: target.kind, digest: target.digest, payload, payloadBytes, signature, layer: layer.digest });
  }
  if (verified.length > 0) return verified;
  if (otherImage.length > 0) {
    throw new VerificationError(
      'other-image',
      `the signature in ${from} is for another image, not ${what}: ${otherImage.join('; ')}`,
      'a signature was copied or replaced; sign this image with kiln sign',
    );
  }
  if (malformed.length > 0) {
    throw new VerificationError('malformed', `the signature of ${what} has a malformed payload: ${malformed.join('; ')}`, 'sign the image again with kiln sign (or cosign sign)');
  }
  throw new VerificationError(
    'wrong-key',
    `${what} is signed, but not with ${keyName}: ${wrongKey === 1 ? 'its signature does not verify' : `none of its ${wrongKey} signatures verifies`} with that key`,
    'give the public key that belongs to the signing key, or the signature was altered',
  );
}
