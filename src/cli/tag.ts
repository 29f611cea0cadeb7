import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { normalizeTagName } from '../oci/reference.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('tag')
    .description('Give an image in the kiln store another name')
    .argument('<source>', 'image name, digest or ID')
    .argument('<target>', 'new name, repository[:tag]')
    .action(async (source: string, target: string) => {
      const store = await ContentStore.open(globals().root);
      const targetName = normalizeTagName(target);
      const desc = await store.resolve(source);
      if (!desc) throw new KilnError(`image ${source} not found in the store; build it, or kiln load/import it`, { code: 'not-found', hint: 'kiln images lists what the store holds' });
      await store.setRef(targetName, desc);
    });
};
