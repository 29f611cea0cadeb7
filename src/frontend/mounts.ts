import type { MountSpec } from '../graph/types.js';
import { withSuggestion } from './suggest.js';

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
/** The keys BuildKit's --mount takes, for "did you mean". */
const MOUNT_KEYS = ['type', 'from', 'source', 'target', 'readonly', 'readwrite', 'id', 'sharing', 'required', 'mode', 'uid', 'gid', 'size', 'env'];

export type ParsedMount = MountSpec & { fromName?: string };

/** Parses a RUN --mount value (CSV of key=value) as BuildKit defines it. */
export function parseMount(value: string, fail: (message: string) => Error): ParsedMount {
  const fields = value.split(',').map((f) => f.trim()).filter(Boolean);
  const spec: ParsedMount = { type: 'bind', target: '' };
  for (const f of fields) {
    const eq = f.indexOf('=');
    const key = (eq === -1 ? f : f.slice(0, eq)).toLowerCase();
    const val = eq === -1 ? undefined : f.slice(eq + 1);
    switch (key) {
      case 'type':
        if (!val || !MOUNT_TYPES.includes(val)) throw fail(withSuggestion(`unsupported mount type "${val ?? ''}"`, val ?? '', MOUNT_TYPES));
        spec.type = val as MountSpec['type'];
        break;
      case 'target':
      case 'dst':
      case 'destination':
        spec.target = val ?? '';
        break;
      case 'source':
      case 'src':
        spec.source = val;
        break;
      case 'from':
        spec.fromName = val;
        spec.from = 'context';
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
        if (!val || !/^[0-7]+$/.test(val)) throw fail(`invalid mount mode "${val ?? ''}": use octal`);
        spec.mode = parseInt(val, 8);
        break;
      case 'uid':
      case 'gid':
        if (!val || !/^\d+$/.test(val)) throw fail(`invalid mount ${key} "${val ?? ''}"`);
        spec[key] = Number(val);
        break;
      case 'required':
        spec.required = val === undefined || val === 'true';
        break;
      case 'size':
        break;
      default:
        throw fail(withSuggestion(`unexpected key '${key}' in '${f}'`, key, MOUNT_KEYS));
    }
  }
  if (spec.type === 'secret' && !spec.target) spec.target = `/run/secrets/${spec.id ?? spec.source ?? ''}`;
  if (spec.type === 'ssh' && !spec.target) spec.target = '/run/buildkit/ssh_agent.0';
  if (!spec.target) throw fail('mount target is required: add target=/path');
  if (spec.type === 'cache') {
    spec.id ??= spec.target;
    spec.sharing ??= 'shared';
  }
  if (spec.type === 'bind') spec.readonly ??= true;
  if (spec.fromName === undefined) spec.from = spec.type === 'bind' ? 'context' : undefined;
  return spec;
}
