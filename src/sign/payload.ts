/**
 * cosign's payload: the "simple signing" JSON (containers/image's format, with cosign's type)
 * that a signature signs, byte for byte as cosign writes it (Go's encoding/json of sigstore's
 * SimpleContainerImage: fields in this order, no spaces, no final newline, `"optional": null`
 * without annotations, annotation keys sorted, <, > and & escaped as \u003c, \u003e, \u0026):
 *
 *   {"critical":{"identity":{"docker-reference":"registry/repo"},
 *    "image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},
 *    "optional":null}
 *
 * parsePayload reads one back, strictly enough that skopeo would read it too.
 */
import { KilnError } from '../errors.js';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

export interface SimpleSigningPayload {
  critical: {
    identity: { 'docker-reference': string };
    image: { 'docker-manifest-digest': string };
    type: string;
  };
  optional: Record<string, unknown> | null;
}

/** JSON as Go's encoding/json writes it: HTML characters and line separators escaped. */
export function goJSON(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sortedObject(record: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(record).sort()) out[k] = record[k];
  return out;
}

/** The payload bytes cosign signs for `manifestDigest` in repository `dockerReference`. */
export function simpleSigningPayload(manifestDigest: string, dockerReference: string, annotations?: Record<string, string>): Buffer {
  const payload: SimpleSigningPayload = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': manifestDigest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional: annotations && Object.keys(annotations).length > 0 ? sortedObject(annotations) : null,
  };
  return Buffer.from(goJSON(payload), 'utf8');
}

/** A payload that is not what cosign writes: why, for a person. */
export class MalformedPayloadError extends KilnError {
  constructor(readonly why: string) {
    super(`malformed signature payload: ${why}`, { code: 'invalid' });
    this.name = 'MalformedPayloadError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The payload in `bytes`, or a MalformedPayloadError saying what is wrong with it. */
export function parsePayload(bytes: Buffer): SimpleSigningPayload {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new MalformedPayloadError('it is not JSON');
  }
  if (!isObject(doc)) throw new MalformedPayloadError('it is not a JSON object');
  const critical = doc.critical;
  if (!isObject(critical)) throw new MalformedPayloadError('it has no "critical" object');
  if (critical.type !== COSIGN_SIGNATURE_TYPE) {
    throw new MalformedPayloadError(`critical.type is ${JSON.stringify(critical.type)}, not "${COSIGN_SIGNATURE_TYPE}"`);
  }
  const identity = critical.identity;
  if (!isObject(identity) || typeof identity['docker-reference'] !== 'string') throw new MalformedPayloadError('critical.identity.docker-reference is missing');
  const image = critical.image;
  if (!isObject(image) || typeof image['docker-manifest-digest'] !== 'string') throw new MalformedPayloadError('critical.image.docker-manifest-digest is missing');
  if (!/^sha256:[a-f0-9]{64}$/.test(image['docker-manifest-digest'])) {
    throw new MalformedPayloadError(`critical.image.docker-manifest-digest ${JSON.stringify(image['docker-manifest-digest'])} is not a sha256 digest`);
  }
  const optional = doc.optional;
  if (optional !== undefined && optional !== null && !isObject(optional)) throw new MalformedPayloadError('"optional" is neither an object nor null');
  return {
    critical: {
      identity: { 'docker-reference': identity['docker-reference'] },
      image: { 'docker-manifest-digest': image['docker-manifest-digest'] },
      type: COSIGN_SIGNATURE_TYPE,
    },
    optional: (optional as Record<string, unknown> | undefined) ?? null,
  };
}
