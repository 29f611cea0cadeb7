import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect } from './options.js';
import { KilnError } from '../errors.js';
import { parseAge, parseSize, pruneCache } from '../cache/gc.js';
import { humanSize } from './format.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('prune')
    .description('Free disk space: blobs no image or cache record uses, and build cache by age, size or all of it')
    .option('-a, --all', 'remove all build cache (records, unpacked layers, cache mounts, fetched ADD sources) not in use')
    .option('--keep-storage <size>', 'evict least-recently-used cache until it uses at most SIZE (e.g. 5GB)')
    .option('--filter <filter>', 'until=DURATION: remove cache not used for longer than DURATION (e.g. 24h, 7d)', collect, [])
    .option('-f, --force', 'do not prompt (kiln never prompts; accepted for docker compatibility)')
    .action(async (o: { all?: boolean; keepStorage?: string; filter: string[] }) => {
      let olderThanMs: number | undefined;
      for (const f of o.filter) {
        const m = /^until=(.+)$/.exec(f);
        if (!m) throw new KilnError(`unsupported --filter "${f}": kiln understands until=DURATION`, { code: 'invalid' });
        olderThanMs = parseAge(m[1]);
      }
      const result = await pruneCache(globals().root, {
        all: o.all === true,
        olderThanMs,
        keepBytes: o.keepStorage === undefined ? undefined : parseSize(o.keepStorage),
      });
      const parts = [`${result.blobs} blob${result.blobs === 1 ? '' : 's'}`];
      if (result.records) parts.push(`${result.records} cache record${result.records === 1 ? '' : 's'}`);
      if (result.snapshots) parts.push(`${result.snapshots} unpacked layer${result.snapshots === 1 ? '' : 's'}`);
      if (result.mounts) parts.push(`${result.mounts} cache mount${result.mounts === 1 ? '' : 's'}`);
      if (result.sources) parts.push(`${result.sources} ADD source cache${result.sources === 1 ? '' : 's'}`);
      process.stdout.write(`Deleted ${parts.join(', ')}\n`);
      process.stdout.write(`Total reclaimed space: ${humanSize(result.freedBytes)}\n`);
    });
};
