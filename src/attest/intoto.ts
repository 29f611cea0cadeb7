/**
 * in-toto Statement v1 (the envelope of every attestation kiln attaches): the statement, its
 * subjects named as BuildKit names an image (a package URL per image name, with the platform),
 * and a check of the statement layer's rules for what is read back.
 */
import { formatPlatform } from '../oci/platform.js';
import { familiarRepository, tryParseReference } from '../oci/reference.js';
import type { Platform } from '../oci/types.js';

export const STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
/** The media type of an attestation manifest's layers (one statement each). */
export const IN_TOTO_MEDIA_TYPE = 'application/vnd.in-toto+json';
/** The layer annotation naming the statement's predicate type. */
export const PREDICATE_TYPE_ANNOTATION = 'in-toto.io/predicate-type';
export const SPDX_PREDICATE = 'https://spdx.dev/Document';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';

export interface Subject {
  name: string;
  digest: Record<string, string>;
}

export interface Statement {
  _type: typeof STATEMENT_V1;
  subject: Subject[];
  predicateType: string;
  predicate: Record<string, unknown>;
}

export function makeStatement(subject: Subject[], predicateType: string, predicate: Record<string, unknown>): Statement {
  // the field order of BuildKit's statements (in-toto-golang's): type, predicate type, subjects, predicate
  return { _type: STATEMENT_V1, predicateType, subject, predicate };
}

/** One path segment of a package URL (RFC 3986 unreserved kept; ':' stays, as Go's PathEscape keeps it). */
function purlSegment(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ':');
}

/**
 * The package URL of an image reference, as BuildKit writes it (`pkg:docker/NAMESPACE/NAME@TAG
 * ?platform=…`): the familiar name (busybox, team/app, localhost:5000/app), the tag (latest
 * when none) or a `digest=` qualifier, and the platform, percent-encoded.
 */
export function imagePurl(ref: string, platform?: Platform): string {
  const parsed = tryParseReference(ref);
  if ('problem' in parsed) throw new Error(`not an image reference: ${ref}`);
  const r = parsed.reference;
  const name = familiarRepository(r.repository).split('/').map(purlSegment).join('/');
  const qualifiers: string[] = [];
  if (r.digest !== undefined) qualifiers.push(`digest=${encodeURIComponent(r.digest)}`);
  const tag = r.tag ?? (r.digest === undefined ? 'latest' : undefined);
  if (platform) qualifiers.push(`platform=${encodeURIComponent(formatPlatform(platform))}`);
  return `pkg:docker/${name}${tag !== undefined ? `@${purlSegment(tag)}` : ''}${qualifiers.length ? `?${qualifiers.join('&')}` : ''}`;
}

/**
 * The subjects of a platform image's statements: one per image name (BuildKit's default
 * subjects), each with the platform manifest's digest; `_` when the build names nothing, as the
 * statement layer says for a name without meaning.
 */
export function imageSubjects(names: string[], platform: Platform, manifestDigest: string): Subject[] {
  const digest = { sha256: manifestDigest.replace(/^sha256:/, '') };
  if (names.length === 0) return [{ name: '_', digest }];
  return [...new Set(names.map((n) => imagePurl(n, platform)))].map((name) => ({ name, digest }));
}

const TYPE_URI = /^[a-z][a-z0-9+.-]*:\S+$/i;

/** What is wrong with a value read as an in-toto Statement v1 (nothing: it is one). */
export function statementProblems(value: unknown): string[] {
  const out: string[] = [];
  if (!value || typeof value !== 'object' || Array.isArray(value)) return ['not a JSON object'];
  const s = value as Record<string, unknown>;
  if (s._type !== STATEMENT_V1) out.push(`_type is ${JSON.stringify(s._type)}, not ${STATEMENT_V1}`);
  if (typeof s.predicateType !== 'string' || !TYPE_URI.test(s.predicateType)) out.push('predicateType is not a URI');
  if (s.predicate !== undefined && (typeof s.predicate !== 'object' || s.predicate === null || Array.isArray(s.predicate))) out.push('predicate is not an object');
  if (!Array.isArray(s.subject) || s.subject.length === 0) out.push('subject is not a non-empty list');
  else {
    const names = new Set<string>();
    s.subject.forEach((sub: unknown, i) => {
      const d = (sub as { digest?: unknown })?.digest;
      if (!d || typeof d !== 'object' || Object.keys(d).length === 0 || Object.values(d).some((v) => typeof v !== 'string' || !/^[0-9a-f]+$/i.test(v))) {
        out.push(`subject[${i}] has no digest of hex values`);
      }
      const name = (sub as { name?: unknown })?.name;
      if (name !== undefined && typeof name !== 'string') out.push(`subject[${i}].name is not a string`);
      if (typeof name === 'string' && name !== '_') {
        if (names.has(name)) out.push(`subject name ${name} is not unique`);
        names.add(name);
      }
    });
  }
  return out;
}
