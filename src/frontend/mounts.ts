import type { MountSpec } from '../graph/types.js';

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
        if (!val || !['bind', 'cache', 'tmpfs', 'secret', 'ssh'].includes(val)) throw fail(`unsupported mount type "${val ?? ''}"`);
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
        if (val !== 'shared' && val !== 'private' && val !== 'locked') throw fail(`invalid sharing mode "${val ?? ''}": use shared, private or locked`);
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
        throw fail(`unexpected key '${key}' in '${f}'`);
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
