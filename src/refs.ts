import { KilnError } from './errors.js';

/**
 * Image names as the docker reference grammar defines them, without docker's "docker.io/library/"
 * expansion: the registry host (and port) stays exactly as written, `app` means `app:latest`.
 */
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

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;

function bad(input: string, why: string): KilnError {
  return new KilnError(`invalid image name ${JSON.stringify(input)}: ${why}`, {
    hint: 'names look like app, app:1.0, registry.example.com:5000/team/app:tag or app@sha256:<64 hex>',
  });
}

/** Parses an image reference; throws a KilnError that says what is wrong with it. */
export function parseReference(input: string): ImageReference {
  if (input.length === 0) throw bad(input, 'the name is empty');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(input, `${JSON.stringify(digest)} is not a digest`);
    if (digest.startsWith('sha256:') && !SHA256.test(digest)) {
      throw bad(input, 'a sha256 digest has exactly 64 lowercase hex digits');
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw bad(input, `tag ${JSON.stringify(tag)} must be 1-128 characters of letters, digits, '_', '.', '-' and not start with '.' or '-'`);
    }
  }
  if (rest.length === 0) throw bad(input, 'the repository name is empty');
  let domain: string | undefined;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
      if (!DOMAIN.test(domain)) throw bad(input, `${JSON.stringify(domain)} is not a valid registry host[:port]`);
    }
  }
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      if (component !== component.toLowerCase() && PATH_COMPONENT.test(component.toLowerCase())) {
        throw bad(input, 'repository names must be lowercase');
      }
      throw bad(input, `path component ${JSON.stringify(component)} must be lowercase letters and digits, separated by '.', '_', '__' or '-'`);
    }
  }
  const repository = domain ? `${domain}/${path}` : path;
  if (repository.length > 255) throw bad(input, 'the repository name is longer than 255 characters');
  return { domain, path, repository, tag, digest };
}

/**
 * The name kiln stores in index.json: "repository:tag" (tag defaults to latest). A reference
 * with a digest and no tag normalises to "repository@digest".
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

/** Splits a stored "repo:tag" name for display; names that do not parse come back as-is. */
export function splitRepoTag(name: string): { repository: string; tag: string } {
  try {
    const ref = parseReference(name);
    return { repository: ref.repository, tag: ref.tag ?? (ref.digest ? '<none>' : 'latest') };
  } catch {
    return { repository: name, tag: '<none>' };
  }
}
