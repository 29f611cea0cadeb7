import path from 'node:path';
import { contextSource, type MountSpec } from '../graph/types.js';
import { withSuggestion } from '../suggest.js';
import { splitCsvFields } from '../csv.js';

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
/** The keys BuildKit's --mount takes, for "did you mean". */
const MOUNT_KEYS = ['type', 'from', 'source', 'target', 'readonly', 'readwrite', 'id', 'sharing', 'required', 'mode', 'uid', 'gid', 'size', 'env'];

export type ParsedMount = MountSpec & { fromName?: string };

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** A size such as 64m, 1.5g, 512k or 1048576 (binary units, as docker's RAMInBytes). */
export function parseRamBytes(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(value);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]);
}

/**
 * Parses a RUN --mount value as BuildKit defines it. `expand` expands a value's variables
 * (each value on its own, after splitting); `from` is never expanded, as in BuildKit. A
 * relative target of a bind, cache or tmpfs mount is taken from `cwd` (the step's WORKDIR).
 */
export function parseMount(value: string, fail: (message: string) => Error, expand: (word: string) => string = (w) => w, cwd = '/'): ParsedMount {
  const spec: ParsedMount = { type: 'bind', target: '' };
  let targetGiven = false;
  for (const f of splitCsvFields(value)) {
    const eq = f.indexOf('=');
    const key = (eq === -1 ? f : f.slice(0, eq)).toLowerCase();
    const raw = eq === -1 ? undefined : f.slice(eq + 1);
    if (key === 'from' && raw !== undefined) {
      const dollar = raw.indexOf('$');
      if (dollar !== -1 && dollar !== raw.length - 1) throw fail(`'from' doesn't support variable expansion, define alias stage instead`);
    }
    const val = raw === undefined || key === 'from' ? raw : expand(raw);
    switch (key) {
      case 'type': {
        const type = val?.toLowerCase();
        if (!type || !MOUNT_TYPES.includes(type)) throw fail(withSuggestion(`unsupported mount type "${val ?? ''}"`, val ?? '', MOUNT_TYPES));
        spec.type = type as MountSpec['type'];
        break;
      }
      case 'target':
      case 'dst':
      case 'destination':
        spec.target = val ?? '';
        targetGiven = spec.target !== '';
        break;
      case 'source':
      case 'src':
        spec.source = val;
        break;
      case 'from':
        spec.fromName = val;
        spec.from = contextSource();
        break;
      case 'readonly':
      case 'ro':
        spec.readonly = val === undefined || val === 'true';
        break;
      case 'rw':
      case 'readwrite':
        spec.readonly = !(val === undefined || val === 'true');
        break;
      case 'id':
        spec.id = val;
        break;
      case 'sharing':
        if (val !== 'shared' && val !== 'private' && val !== 'locked') throw fail(withSuggestion(`unsupported sharing value "${val ?? ''}"`, val ?? '', ['shared', 'private', 'locked']));
        spec.sharing = val;
        break;
      case 'mode':
        if (!val || !/^[0-7]+$/.test(val)) throw fail(`invalid value ${val ?? ''} for mode: use octal, such as 0440`);
        spec.mode = parseInt(val, 8);
        break;
      case 'uid':
      case 'gid':
        if (!val || !/^\d+$/.test(val)) throw fail(`invalid value ${val ?? ''} for ${key}: use a number`);
        spec[key] = Number(val);
        break;
      case 'required':
        spec.required = val === undefined || val === 'true';
        break;
      case 'size': {
        const size = val === undefined ? undefined : parseRamBytes(val);
        if (size === undefined) throw fail(`invalid value for size: ${val ?? ''}: use bytes or a unit, such as 64m`);
        spec.size = size;
        break;
      }
      case 'env':
        spec.env = val ?? '';
        break;
      default:
        throw fail(withSuggestion(`unexpected key '${key}' in '${f}'`, key, MOUNT_KEYS));
    }
  }
  const t = spec.type;
  if (spec.size !== undefined && t !== 'tmpfs') throw fail(`unexpected key 'size' for mount type '${t}'`);
  if (spec.required !== undefined && t !== 'secret' && t !== 'ssh') throw fail(`unexpected key 'required' for mount type '${t}'`);
  if (spec.env !== undefined && t !== 'secret') throw fail(`unexpected key 'env' for mount type '${t}'`);
  if (t !== 'secret' && t !== 'ssh' && t !== 'cache') {
    for (const k of ['mode', 'uid', 'gid'] as const) if (spec[k] !== undefined) throw fail(`${k} not allowed for "${t}" type mounts`);
  }
  if (t === 'secret') {
    if (spec.fromName !== undefined) throw fail('secret mount should not have a from');
    if (spec.sharing !== undefined) throw fail('secret mount should not define sharing');
    if (spec.source && spec.id) throw fail("both source and id can't be set");
    if (!spec.source && !targetGiven && !spec.id) throw fail('invalid secret mount: one of id, source or target is required');
    // the id: id=, else source=, else the target's base name
    spec.id = spec.id || spec.source || path.posix.basename(spec.target);
    delete spec.source;
    // with env= and no target the secret is an environment variable only
    if (!targetGiven && spec.env === undefined) spec.target = `/run/secrets/${path.posix.basename(spec.id)}`;
  }
  if (spec.sharing !== undefined && t !== 'cache') throw fail(`invalid cache sharing set for ${t} mount`);
  if (t === 'ssh') {
    if (spec.source !== undefined) throw fail('ssh does not support source');
    // the socket's default target, /run/buildkit/ssh_agent.N, is numbered by the solver
    spec.id ||= 'default';
  }
  if (!spec.target && t !== 'ssh' && !(t === 'secret' && spec.env !== undefined)) throw fail('mount target is required: add target=/path');
  if (t === 'cache') {
    // BuildKit names a cache by its target as written, cleaned
    spec.id ??= path.posix.normalize(spec.target).replace(/(.)\/$/, '$1');
    spec.sharing ??= 'shared';
  }
  if (t === 'bind' || t === 'cache' || t === 'tmpfs') {
    if (!spec.target.startsWith('/')) spec.target = path.posix.join('/', cwd, spec.target);
    if (path.posix.normalize(spec.target) === '/') throw fail(`invalid mount target "/": a mount cannot cover the root`);
  }
  if (t === 'bind') spec.readonly ??= true;
  if (spec.fromName === undefined && t === 'bind') spec.from = contextSource();
  return spec;
}
