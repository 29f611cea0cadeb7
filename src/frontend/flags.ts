import { KilnError } from '../errors.js';
import type { Instruction } from '../dockerfile/ast.js';
import { locate } from './locate.js';
import { withSuggestion } from '../suggest.js';

export type FlagKind = 'string' | 'bool' | 'strings';

export interface ParsedFlags {
  string(name: string): string | undefined;
  bool(name: string): boolean;
  strings(name: string): string[];
}

/**
 * Parses an instruction's `--name=value` flags against the flags it accepts.
 * An unknown flag, a missing value or a repeated single-valued flag is an error at
 * the instruction's line.
 */
export function parseFlags(
  inst: Instruction,
  accepted: Record<string, FlagKind>,
  fileName: string,
  lines: string[],
): ParsedFlags {
  const values = new Map<string, string[]>();
  for (const raw of inst.flags) {
    const body = raw.replace(/^--/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const value = eq === -1 ? undefined : body.slice(eq + 1);
    const kind = accepted[name];
    if (!kind) {
      const known = Object.keys(accepted);
      throw new KilnError(withSuggestion(`unknown flag: --${name}`, name, known), {
        location: locate(inst, fileName, lines, raw),
        hint: known.length
          ? `${inst.keyword.toUpperCase()} accepts ${known.map((k) => `--${k}`).join(', ')}`
          : `${inst.keyword.toUpperCase()} takes no flags`,
      });
    }
    if (kind === 'bool') {
      if (value !== undefined && value !== 'true' && value !== 'false') {
        throw new KilnError(`invalid value for --${name}: expecting true or false, got "${value}"`, {
          location: locate(inst, fileName, lines, raw),
          hint: `write --${name} (or --${name}=false)`,
        });
      }
      values.set(name, [value ?? 'true']);
      continue;
    }
    if (value === undefined) {
      throw new KilnError(`missing a value on flag: --${name}`, {
        location: locate(inst, fileName, lines, raw),
        hint: `write --${name}=VALUE`,
      });
    }
    const prev = values.get(name);
    if (prev && kind === 'string') {
      throw new KilnError(`duplicate flag specified: --${name}`, { location: locate(inst, fileName, lines, raw), hint: `give --${name} once` });
    }
    values.set(name, [...(prev ?? []), value]);
  }
  return {
    string: (n) => values.get(n)?.[0],
    bool: (n) => values.get(n)?.[0] === 'true',
    strings: (n) => values.get(n) ?? [],
  };
}
