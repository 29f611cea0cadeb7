import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { saveImages } from '../export/index.js';
import { parsePlatform } from '../oci/platform.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('save')
    .description('Write images from the kiln store to a docker archive (docker load) or an OCI archive')
    .argument('<names...>', 'image names, digests or IDs')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--format <format>', 'docker or oci', 'docker')
    .option('--platform <os/arch>', "one platform of a multi-platform image (default: oci keeps the whole index, docker takes this machine's)")
    .action(async (names: string[], o: { output?: string; format: string; platform?: string }) => {
      if (o.format !== 'docker' && o.format !== 'oci') {
        throw new KilnError(`unknown --format ${JSON.stringify(o.format)}`, { hint: 'use --format docker (for docker load) or --format oci (an OCI layout archive)' });
      }
      const options = { platform: o.platform === undefined ? undefined : parsePlatform(o.platform, '--platform') };
      const store = await ContentStore.open(globals().root);
      if (o.output && o.output !== '-') {
        await saveImages(store, names, o.output, o.format, options);
        return;
      }
      if (process.stdout.isTTY) {
        throw new KilnError('refusing to write an archive to a terminal', { hint: 'use -o FILE, or redirect stdout' });
      }
      await saveImages(store, names, process.stdout, o.format, options);
    });
};
