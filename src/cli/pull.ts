import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { ContentStore } from '../oci/store.js';
import { parsePlatform } from '../oci/platform.js';
import { parseCanonicalReference, parseReference } from '../oci/reference.js';
import { registryClient } from '../registry/settings.js';
import { pullImage } from '../registry/pull.js';
import { transferRenderer } from './transfer.js';

export const register: Registrar = (program: Command, globals) => {
  program
    .command('pull')
    .description('Pull an image from a registry into the kiln store')
    .argument('<ref>', 'image reference: name[:tag][@digest], e.g. localhost:5000/team/app:1')
    .option('--platform <os/arch>', "the platform to pull from a multi-platform image (default: this machine's)")
    .option('-q, --quiet', 'print only the image name')
    .action(async (ref: string, o: { platform?: string; quiet?: boolean }) => {
      const { root, insecureRegistries } = globals();
      const platform = o.platform ? parsePlatform(o.platform) : undefined;
      const written = parseReference(ref);
      const out = process.stdout;
      const say = (line: string): void => void (o.quiet ? undefined : out.write(`${line}\n`));
      if (written.tag === undefined && written.digest === undefined) say('Using default tag: latest');
      const store = await ContentStore.open(root);
      const client = registryClient({ root, insecureRegistries });
      const renderer = transferRenderer(o.quiet ? 'quiet' : 'auto', out);
      let pulled;
      try {
        say(`${written.digest ?? written.tag ?? 'latest'}: Pulling from ${parseCanonicalReference(ref).path}`);
        pulled = await pullImage({ root, store, client, ref, platform, progress: (ev) => renderer.onEvent(ev) });
      } finally {
        renderer.finish();
        client.close();
      }
      say(`Digest: ${pulled.digest}`);
      say(pulled.upToDate ? `Status: Image is up to date for ${pulled.name}` : `Status: Downloaded newer image for ${pulled.name}`);
      out.write(`${pulled.name}\n`);
    });
};
