/**
 * Image references: the one model of image names, after Docker's distribution/reference grammar.
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component ( "/" path-component )*
 *   domain     := host [ ":" port ]      (a first component with ".", ":", uppercase, or "localhost")
 *
 * Three forms of a name:
 * - as written ({@link parseReference}): what kiln stores in its index.json, e.g. `app:1`,
 *   `localhost:5000/team/app:2`. No docker.io expansion: the store keeps names as given.
 * - canonical ({@link canonicalName}): Docker Hub made explicit, `busybox` →
 *   `docker.io/library/busybox:latest` — the name a registry is asked for.
 * - familiar ({@link familiarName}): Docker Hub left implicit, `docker.io/library/busybox:latest`
 *   → `busybox:latest` — the name shown to people.
 */
import { KilnError } from '../errors.js';

export interface ImageReference {
  /** Registry host[:port] when the name has one ("localhost:5000"), else undefined. */
  domain?: string;
  /** The repository path without the domain ("library/app"). */
  path: string;
  /** domain + "/" + path, or just path: what docker calls the repository. */
  repository: string;
  tag?: string;
  digest?: string;
}

/** A reference with Docker Hub made explicit: domain is always set, official images are library/. */
export interface CanonicalReference extends ImageReference {
  domain: string;
}

/** Docker Hub, as canonical names spell it. */
export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;

const HINT = 'names look like app, app:1.0, registry.example.com:5000/team/app:tag or app@sha256:<64 hex>';

/** The reference, or what is wrong with it (naming the part: tag, digest, host, path component). */
export function tryParseReference(input: string): { reference: ImageReference } | { problem: string } {
  if (input.length === 0) return { problem: 'the name is empty' };
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return { problem: `${JSON.stringify(digest)} is not a digest` };
    if (digest.startsWith('sha256:') && !SHA256.test(digest)) return { problem: 'a sha256 digest has exactly 64 lowercase hex digits' };
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      return { problem: `tag ${JSON.stringify(tag)} must be 1-128 characters of letters, digits, '_', '.', '-' and not start with '.' or '-'` };
    }
  }
  if (rest.length === 0) return { problem: 'the repository name is empty' };
  let domain: string | undefined;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // as docker's splitDockerDomain: a registry host has a dot or a port, is localhost, or is not lowercase
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
      if (!DOMAIN.test(domain)) return { problem: `${JSON.stringify(domain)} is not a valid registry host[:port]` };
    }
  }
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      if (component !== component.toLowerCase() && PATH_COMPONENT.test(component.toLowerCase())) {
        return { problem: 'repository names must be lowercase' };
      }
      return { problem: `path component ${JSON.stringify(component)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'` };
    }
  }
  const repository = domain ? `${domain}/${path}` : path;
  if (repository.length > 255) return { problem: 'the repository name is longer than 255 characters' };
  return { reference: { domain, path, repository, tag, digest } };
}

function invalid(input: string, problem: string): KilnError {
  return new KilnError(`invalid image name ${JSON.stringify(input)}: ${problem}`, { hint: HINT });
}

/** Parses an image reference as written; throws a KilnError that says which part is wrong. */
export function parseReference(input: string): ImageReference {
  const r = tryParseReference(input);
  if ('problem' in r) throw invalid(input, r.problem);
  return r.reference;
}

/** Docker Hub made explicit, as docker's splitDockerDomain does; the tag and digest stay. */
function canonicalize(ref: ImageReference): CanonicalReference {
  let domain = ref.domain ?? DEFAULT_DOMAIN;
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  const path = domain === DEFAULT_DOMAIN && !ref.path.includes('/') ? `${OFFICIAL_PREFIX}${ref.path}` : ref.path;
  return { domain, path, repository: `${domain}/${path}`, tag: ref.tag, digest: ref.digest };
}

/**
 * The reference as docker's ParseNormalizedNamed reads it, or what is wrong: Docker Hub made
 * explicit, and a bare 64-hex string refused (it is an image ID, not a name).
 */
export function tryParseCanonicalReference(input: string): { reference: CanonicalReference } | { problem: string } {
  if (IMAGE_ID.test(input)) return { problem: 'a 64-hex string is an image ID, not a repository name' };
  const r = tryParseReference(input);
  return 'problem' in r ? r : { reference: canonicalize(r.reference) };
}

/** Like tryParseCanonicalReference; throws a KilnError that says which part is wrong. */
export function parseCanonicalReference(input: string): CanonicalReference {
  const r = tryParseCanonicalReference(input);
  if ('problem' in r) throw invalid(input, r.problem);
  return r.reference;
}

/**
 * The canonical name: `busybox` → `docker.io/library/busybox:latest`,
 * `localhost:5000/app@sha256:…` → `localhost:5000/app@sha256:…` (a digest and no tag gets no
 * "latest"), `app:1@sha256:…` keeps both. Throws for a name that does not parse.
 */
export function canonicalName(input: string): string {
  const ref = parseCanonicalReference(input);
  return formatReference({ ...ref, tag: ref.tag ?? (ref.digest === undefined ? 'latest' : undefined) });
}

/** repository[:tag][@digest] */
function formatReference(ref: ImageReference): string {
  return `${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The repository with Docker Hub left implicit: docker.io/library/busybox → busybox, docker.io/team/app → team/app. */
function familiarRepositoryOf(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN && ref.domain !== LEGACY_DEFAULT_DOMAIN) return ref.repository;
  const rest = ref.path.startsWith(OFFICIAL_PREFIX) ? ref.path.slice(OFFICIAL_PREFIX.length) : ref.path;
  return rest.includes('/') ? ref.path : rest;
}

/**
 * The familiar form people read (docker's FamiliarString): `docker.io/library/busybox:latest`
 * → `busybox:latest`, `docker.io/team/app:1` → `team/app:1`; other registries and names
 * already familiar stay as written, tag and digest included. Text that is not a reference
 * comes back unchanged.
 */
export function familiarName(name: string): string {
  const r = tryParseReference(name);
  return 'problem' in r ? name : formatReference({ ...r.reference, repository: familiarRepositoryOf(r.reference) });
}

/** The familiar repository alone (docker's FamiliarName): `docker.io/library/busybox:latest` → `busybox`. */
export function familiarRepository(name: string): string {
  const r = tryParseReference(name);
  return 'problem' in r ? name : familiarRepositoryOf(r.reference);
}

/**
 * The name kiln stores in index.json: "repository:tag" (tag defaults to latest), as written
 * otherwise. A reference with a digest and no tag normalises to "repository@digest".
 */
export function normalizeName(input: string): string {
  const ref = parseReference(input);
  if (ref.tag === undefined && ref.digest !== undefined) return `${ref.repository}@${ref.digest}`;
  return `${ref.repository}:${ref.tag ?? 'latest'}`;
}

/** A name suitable for a tag: normalised, and without a digest. */
export function normalizeTagName(input: string): string {
  const ref = parseReference(input);
  if (ref.digest !== undefined) {
    throw new KilnError(`cannot use ${JSON.stringify(input)} as a tag: it contains a digest`, {
      hint: 'give a name like app:1.0 (the digest is chosen by the content)',
    });
  }
  return `${ref.repository}:${ref.tag ?? 'latest'}`;
}

/**
 * How messages show a name or digest the user gave: a name as stored ("app" → "app:latest"), a
 * digest or anything that is not a name exactly as given.
 */
export function displayName(input: string): string {
  const r = tryParseReference(input);
  if ('problem' in r || r.reference.digest !== undefined) return input;
  return normalizeName(input);
}

/** Splits a stored "repo:tag" name for display; names that do not parse come back as-is. */
export function splitRepoTag(name: string): { repository: string; tag: string } {
  const r = tryParseReference(name);
  if ('problem' in r) return { repository: name, tag: '<none>' };
  return { repository: r.reference.repository, tag: r.reference.tag ?? (r.reference.digest ? '<none>' : 'latest') };
}
