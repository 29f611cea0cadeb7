import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { loadArchive } from '../oci/archive.js';
import { isDigest } from '../oci/digest.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('load')
    .description('Load images from a docker or OCI archive (plain or gzip) into the kiln store')
    .option('-i, --input <file>', 'read from this file instead of stdin')
    .option('-q, --quiet', 'print nothing')
    .action(async (o: { input?: string; quiet?: boolean }) => {
      const store = await ContentStore.open(globals().root);
      let source: string | NodeJS.ReadableStream;
      if (o.input && o.input !== '-') source = o.input;
      else {
        if (process.stdin.isTTY) {
          throw new KilnError('kiln load reads the archive from stdin, but stdin is a terminal', { hint: 'use kiln load -i FILE, or pipe an archive in' });
        }
        source = process.stdin;
      }
      const names = await loadArchive(store, source);
      if (o.quiet) return;
      for (const n of names) process.stdout.write(isDigest(n) ? `Loaded image ID: ${n}\n` : `Loaded image: ${n}\n`);
    });
};
