import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { cacheLimit, cacheUsage } from '../cache/gc.js';
import { formatTable, humanDuration, humanSize } from './format.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('du')
    .description('Show build cache disk usage: layers kept by cache records, unpacked layers, cache mounts')
    .option('-v, --verbose', 'one line per cache item')
    .option('--format <format>', 'table (default) or json', 'table')
    .action(async (o: { verbose?: boolean; format: string }) => {
      const root = globals().root;
      const usage = await cacheUsage(root);
      const limit = await cacheLimit(root);
      if (o.format === 'json') {
        process.stdout.write(`${JSON.stringify({ ...usage, limit: limit ?? null }, null, 2)}\n`);
        return;
      }
      const now = Date.now();
      if (o.verbose) {
        const rows = [...usage.items]
          .sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime())
          .map((i) => [i.id, i.kind, i.inUse ? 'false' : 'true', humanSize(i.size), `${humanDuration(now - i.lastUsed.getTime())} ago`, i.description]);
        process.stdout.write(formatTable([['ID', 'TYPE', 'RECLAIMABLE', 'SIZE', 'LAST USED', 'DESCRIPTION'], ...rows]));
        process.stdout.write('\n');
      }
      const byKind = (k: string) => usage.items.filter((i) => i.kind === k);
      const rows = ['layer', 'snapshot', 'cache-mount', 'context-index', 'source'].map((k) => {
        const items = byKind(k);
        return [k, String(items.length), humanSize(items.reduce((n, i) => n + i.size, 0)), humanSize(items.filter((i) => !i.inUse).reduce((n, i) => n + i.size, 0))];
      });
      process.stdout.write(formatTable([['TYPE', 'COUNT', 'SIZE', 'RECLAIMABLE'], ...rows]));
      process.stdout.write(`Total:\t\t${humanSize(usage.total)}\nReclaimable:\t${humanSize(usage.reclaimable)}\nLimit:\t\t${limit === undefined ? 'none' : humanSize(limit)}\n`);
    });
};
