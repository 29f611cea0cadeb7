import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { collect } from './options.js';
import { ContentStore } from '../oci/store.js';
import { importRootfs } from '../oci/import.js';
import type { ImageManifest } from '../oci/types.js';
import { parsePlatform } from '../oci/platform.js';
import { normalizeTagName } from '../oci/reference.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('import')
    .description('Create an image from a root filesystem tarball (.tar, .tar.gz), like docker import')
    .argument('<rootfs>', 'tarball of the root filesystem')
    .argument('<name>', 'image name, repository[:tag]')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the config, e.g. \'CMD ["sh"]\' (repeatable)', collect, [])
    .option('-m, --message <text>', 'history comment')
    .option('--platform <os/arch>', "platform of the image (default: this machine's)")
    .action(async (rootfs: string, name: string, o: { change: string[]; message?: string; platform?: string }) => {
      const store = await ContentStore.open(globals().root);
      const desc = await importRootfs(store, rootfs, name, {
        changes: o.change,
        message: o.message,
        platform: o.platform ? parsePlatform(o.platform) : undefined,
      });
      // like docker import: print the image id (config digest)
      const manifest = await store.readJSON<ImageManifest>(desc.digest);
      process.stdout.write(`${manifest.config.digest}\n`);
      process.stderr.write(`Imported ${rootfs} as ${normalizeTagName(name)}\n`);
    });
};
