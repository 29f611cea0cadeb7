import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { removeImages } from '../images.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('rmi')
    .description('Remove image names from the kiln store (kiln prune then frees the space)')
    .argument('<names...>', 'image names, digests or IDs')
    .action(async (names: string[]) => {
      const { removed, missing } = await removeImages(globals().root, names);
      for (const n of removed) process.stdout.write(`Untagged: ${n}\n`);
      if (missing.length > 0) {
        throw new KilnError(`no such image${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`, { hint: 'kiln images lists what the store holds' });
      }
    });
};
