import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { pruneStore } from '../export/prune.js';
import { humanSize } from '../export/format.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('prune')
    .description('Free disk space: delete blobs no image in the kiln store uses')
    .option('-f, --force', 'do not prompt (kiln never prompts; accepted for docker compatibility)')
    .action(async () => {
      const result = await pruneStore(globals().root);
      process.stdout.write(`Deleted ${result.removedBlobs} blob${result.removedBlobs === 1 ? '' : 's'}\n`);
      process.stdout.write(`Total reclaimed space: ${humanSize(result.freedBytes)}\n`);
    });
};
