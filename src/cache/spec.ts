/**
 * --cache-to and --cache-from, as buildx spells them: `type=…,key=value,…` (CSV), and a bare
 * `--cache-from REF` for type=registry,ref=REF.
 */
import { KilnError } from '../errors.js';

export type CacheCompression = 'gzip' | 'uncompressed';

export interface CacheExportSpec {
  type: 'local' | 'registry' | 'inline';
  /** type=local: the directory written (an OCI layout). */
  dest?: string;
  /** type=registry: the reference the cache manifest is pushed to. */
  ref?: string;
  /** min (default): the final stage's steps; max: every step the build solved. */
  mode?: 'min' | 'max';
  /** Default true: a failed export is a warning; false fails the build. */
  ignoreError?: boolean;
  /** Layer compression of the cache's blobs (default gzip). */
  compression?: CacheCompression;
  /** Cache mounts (by id, or all) stored beside the cache. */
  cacheMounts?: string[] | 'all';
}

export interface CacheImportSpec {
  type: 'local' | 'registry';
  /** type=local: the directory read. */
  src?: string;
  /** type=registry: a cache manifest, or an image with an inline cache. */
  ref?: string;
}

/** `a=1,b=2,c` → pairs; a field without `=` continues the list value before it (cache-mounts=a,b). */
function fields(text: string, flag: string, listKeys: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) {
      const last = out[out.length - 1];
      if (last && listKeys.includes(last[0])) {
        last[1] = `${last[1]},${part}`;
        continue;
      }
      throw new KilnError(`${flag} "${text}": "${part}" is not key=value`, { code: 'invalid', hint: `write ${flag} type=local,dest=DIR or type=registry,ref=REF` });
    }
    out.push([part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim()]);
  }
  return out;
}

function bool(v: string, flag: string, key: string): boolean {
  if (/^(true|1)$/i.test(v)) return true;
  if (/^(false|0)$/i.test(v)) return false;
  throw new KilnError(`${flag}: ${key}=${v} is not true or false`, { code: 'invalid' });
}

function unknownKey(flag: string, type: string, key: string, allowed: string[]): KilnError {
  return new KilnError(`${flag} type=${type}: unknown option "${key}"`, { code: 'invalid', hint: `type=${type} takes ${allowed.join(', ')}` });
}

function typeOf(pairs: Array<[string, string]>, flag: string, types: string[], text: string): string {
  const t = pairs.find(([k]) => k === 'type')?.[1];
  if (t === undefined) throw new KilnError(`${flag} "${text}" has no type=`, { code: 'invalid', hint: `name one of type=${types.join(', type=')}` });
  if (!types.includes(t)) throw new KilnError(`${flag}: unknown cache type "${t}"`, { code: 'invalid', hint: `kiln knows type=${types.join(', type=')}` });
  return t;
}

function need(value: string | undefined, flag: string, type: string, key: string): string {
  if (!value) throw new KilnError(`${flag} type=${type} needs ${key}=`, { code: 'invalid', hint: type === 'local' ? `write ${flag} type=local,${key}=DIR` : `write ${flag} type=registry,ref=HOST/REPO:TAG` });
  return value;
}

/** buildx options asking for what kiln's cache always is (an OCI image manifest, OCI media types). */
const OCI_FORMAT_KEYS = ['oci-mediatypes', 'image-manifest'];

export function parseCacheTo(text: string): CacheExportSpec {
  const flag = '--cache-to';
  const pairs = fields(text, flag, ['cache-mounts']);
  const type = typeOf(pairs, flag, ['local', 'registry', 'inline'], text) as CacheExportSpec['type'];
  const spec: CacheExportSpec = { type };
  const allowed = ['type', ...(type === 'local' ? ['dest'] : type === 'registry' ? ['ref'] : []), 'mode', 'ignore-error', ...(type === 'inline' ? [] : ['compression', 'cache-mounts', ...OCI_FORMAT_KEYS])];
  for (const [k, v] of pairs) {
    if (!allowed.includes(k)) throw unknownKey(flag, type, k, allowed);
    if (k === 'dest') spec.dest = v;
    else if (k === 'ref') spec.ref = v;
    else if (k === 'mode') {
      if (v !== 'min' && v !== 'max') throw new KilnError(`${flag}: mode=${v} is not min or max`, { code: 'invalid' });
      if (type === 'inline' && v === 'max') throw new KilnError(`${flag} type=inline supports mode=min only`, { code: 'invalid', hint: 'export mode=max to a registry or a directory: type=registry,ref=…,mode=max' });
      spec.mode = v;
    } else if (k === 'ignore-error') spec.ignoreError = bool(v, flag, k);
    else if (k === 'compression') {
      if (v !== 'gzip' && v !== 'uncompressed') throw new KilnError(`${flag}: compression=${v} is not gzip or uncompressed`, { code: 'invalid' });
      spec.compression = v;
    } else if (OCI_FORMAT_KEYS.includes(k)) {
      // buildx's switches to BuildKit's OCI form, the only form kiln writes: true is a no-op
      if (!bool(v, flag, k)) throw new KilnError(`${flag}: ${k}=false is not supported: kiln always writes the cache as an OCI image manifest with OCI media types`, { code: 'invalid', hint: `leave ${k}= out` });
    } else if (k === 'cache-mounts') {
      const ids = v.split(',').map((s) => s.trim()).filter(Boolean);
      if (ids.length === 0) throw new KilnError(`${flag}: cache-mounts= names no mount`, { code: 'invalid', hint: 'write cache-mounts=all, or the ids of RUN --mount=type=cache mounts' });
      spec.cacheMounts = ids.includes('all') ? 'all' : ids;
    }
  }
  if (type === 'local') need(spec.dest, flag, type, 'dest');
  if (type === 'registry') need(spec.ref, flag, type, 'ref');
  return spec;
}

export function parseCacheFrom(text: string): CacheImportSpec {
  const flag = '--cache-from';
  if (!text.includes('=')) {
    if (text.trim() === '') throw new KilnError(`${flag} needs a value`, { code: 'invalid', hint: 'write --cache-from REF or --cache-from type=local,src=DIR' });
    return { type: 'registry', ref: text.trim() };
  }
  const pairs = fields(text, flag, []);
  const type = typeOf(pairs, flag, ['local', 'registry'], text) as CacheImportSpec['type'];
  const spec: CacheImportSpec = { type };
  const allowed = ['type', type === 'local' ? 'src' : 'ref'];
  for (const [k, v] of pairs) {
    if (!allowed.includes(k)) throw unknownKey(flag, type, k, allowed);
    if (k === 'src') spec.src = v;
    else if (k === 'ref') spec.ref = v;
  }
  if (type === 'local') need(spec.src, flag, type, 'src');
  else need(spec.ref, flag, type, 'ref');
  return spec;
}

/** How a spec is named in messages. */
export function describeCacheSpec(spec: CacheExportSpec | CacheImportSpec): string {
  if (spec.type === 'inline') return 'type=inline';
  if (spec.type === 'registry') return `type=registry,ref=${spec.ref ?? ''}`;
  return `type=local,${'dest' in spec ? `dest=${spec.dest ?? ''}` : `src=${(spec as CacheImportSpec).src ?? ''}`}`;
}
