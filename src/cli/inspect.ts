import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { parsePlatform } from '../oci/platform.js';
import type { ImageIndex } from '../oci/types.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('inspect')
    .description('Show the manifest and config of an image in the kiln store, as JSON')
    .argument('<name>', 'image name, digest or ID')
    .option('--platform <os/arch>', "the platform to show for a multi-platform image (default: this machine's)")
    .action(async (name: string, o: { platform?: string }) => {
      const store = await ContentStore.open(globals().root);
      const img = await loadImage(store, name, o.platform ? parsePlatform(o.platform) : undefined);
      const out: Record<string, unknown> = {
        name: img.name,
        digest: img.manifestDescriptor.digest,
        mediaType: img.manifestDescriptor.mediaType,
        size: img.manifestDescriptor.size,
      };
      if (img.indexDescriptor) {
        out.index = { digest: img.indexDescriptor.digest, ...(await store.readJSON<ImageIndex>(img.indexDescriptor.digest)) };
      }
      out.manifest = img.manifest;
      out.config = img.config;
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
};
