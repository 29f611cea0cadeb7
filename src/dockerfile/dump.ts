/**
 * BuildKit's parse-tree debug dump: one S-expression per instruction, values quoted
 * the way Go's strconv.Quote quotes them.
 */
import type { Dockerfile, Instruction } from './ast.js';
import { splitCommand, splitKeyValues } from './parser.js';

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** Go's strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '"' || ch === '\\') {
      out += '\\' + ch;
    } else if (ch === ' ' || PRINTABLE.test(ch)) {
      out += ch;
    } else {
      switch (cp) {
        case 0x07: out += '\\a'; break;
        case 0x08: out += '\\b'; break;
        case 0x0c: out += '\\f'; break;
        case 0x0a: out += '\\n'; break;
        case 0x0d: out += '\\r'; break;
        case 0x09: out += '\\t'; break;
        case 0x0b: out += '\\v'; break;
        default:
          if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
          else if (cp >= 0xd800 && cp <= 0xdfff) out += '\\ufffd';
          else if (cp < 0x10000) out += '\\u' + hex(cp, 4);
          else out += '\\U' + hex(cp, 8);
      }
    }
  }
  return out + '"';
}

/** The values BuildKit chains after the keyword (ENV/LABEL carry a separator per pair). */
function dumpValues(inst: Instruction, escape: '\\' | '`'): string[] {
  if (inst.keyword !== 'env' && inst.keyword !== 'label') return inst.args;
  // the legacy `ENV key value` form has separator "", the key=value form "="
  let sep = '=';
  if (inst.args.length === 2) {
    try {
      sep = splitKeyValues(splitCommand(inst.original).rest, inst.keyword, escape).legacy ? '' : '=';
    } catch {
      sep = '=';
    }
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < inst.args.length; i += 2) out.push(inst.args[i] as string, inst.args[i + 1] as string, sep);
  return out;
}

function dumpInstruction(inst: Instruction, escape: '\\' | '`'): string {
  let s = inst.keyword.toLowerCase();
  if (inst.flags.length > 0) s += ` [${inst.flags.map(goQuote).join(' ')}]`;
  if (inst.keyword === 'onbuild' && inst.onbuild) {
    s += ` (${dumpInstruction(inst.onbuild, escape)})`;
  } else {
    for (const v of dumpValues(inst, escape)) s += ' ' + goQuote(v);
  }
  return s;
}

/** Exactly what BuildKit's `Node.Dump()` prints for the file, one line per instruction. */
export function dumpParseTree(df: Dockerfile): string {
  return df.instructions.map((i) => `(${dumpInstruction(i, df.directives.escape)})\n`).join('');
}
