/** Option helpers shared by the commands. */
import { KilnError } from '../errors.js';

/** commander accumulator for repeatable options. */
export function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** K=V pairs; a bare K takes its value from the environment, as docker does. */
export function parseKeyValues(items: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i === 0) throw new KilnError(`invalid ${what} "${item}": expected KEY=VALUE`);
    if (i === -1) {
      const v = process.env[item];
      if (v !== undefined) out[item] = v;
      continue;
    }
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
