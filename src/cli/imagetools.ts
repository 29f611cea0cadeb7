import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { collect } from './options.js';
import { createIndex, formatInspect, inspectImage, inspectJSON, openImage, type ImagetoolsContext } from '../imagetools.js';
import { ContentStore } from '../oci/store.js';
import { registryClient } from '../registry/settings.js';

async function withContext<T>(settings: { root: string; insecureRegistries: string[] }, fn: (ctx: ImagetoolsContext) => Promise<T>): Promise<T> {
  const client = registryClient(settings);
  let store: Promise<ContentStore> | undefined;
  try {
    return await fn({ client, store: () => (store ??= ContentStore.open(settings.root)) });
  } finally {
    client.close();
  }
}

export const register: Registrar = (program: Command, globals) => {
  const tools = program.command('imagetools').description('Inspect images and combine them into multi-platform indexes (as docker buildx imagetools)');
  tools
    .command('inspect')
    .description('Show an image index and each platform manifest, from the store or a registry (docker://REF, or a name the store does not hold)')
    .argument('<ref>', 'image name in the store, or docker://HOST/REPO:TAG')
    .option('--raw', 'print the manifest or index exactly as stored or served')
    .option('--format <format>', 'json: the document and each platform config as JSON')
    .action(async (ref: string, o: { raw?: boolean; format?: string }) => {
      if (o.format !== undefined && o.format !== 'json') {
        throw new KilnError(`unknown --format ${JSON.stringify(o.format)}`, { code: 'invalid', hint: 'use --format json, or --raw for the document as it is' });
      }
      if (o.raw && o.format) throw new KilnError('--raw and --format cannot be combined', { code: 'invalid' });
      await withContext(globals(), async (ctx) => {
        const image = await openImage(ctx, ref);
        if (o.raw) {
          process.stdout.write(image.bytes);
          return;
        }
        const r = await inspectImage(image);
        process.stdout.write(o.format === 'json' ? `${JSON.stringify(inspectJSON(r), null, 2)}\n` : formatInspect(r));
      });
    });
  tools
    .command('create')
    .description('Combine images or indexes into one index: in a registry (blobs mounted or copied, the index tagged last) or in the store')
    .argument('<sources...>', 'images to combine: names in the store, or registry references (docker://REF)')
    .option('-t, --tag <ref>', 'name of the new index (repeatable); docker://REF pushes it to a registry', collect, [])
    .option('--annotation <key=value>', 'annotate the index (KEY=VALUE, index:KEY=VALUE) or its entries (manifest-descriptor:KEY=VALUE); repeatable', collect, [])
    .option('--dry-run', 'print the index, write nothing')
    .action(async (sources: string[], o: { tag: string[]; annotation: string[]; dryRun?: boolean }) => {
      await withContext(globals(), async (ctx) => {
        const r = await createIndex(ctx, { sources, tags: o.tag, annotations: o.annotation, dryRun: o.dryRun });
        if (o.dryRun) {
          process.stdout.write(`${JSON.stringify(r.index, null, 2)}\n`);
          return;
        }
        for (const ref of r.references) process.stdout.write(`${ref}\n`);
      });
    });
};
