import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { parseReference, splitRepoTag } from '../oci/reference.js';
import { pushImage, type PushResult } from '../registry/push.js';
import { registryClient } from '../registry/settings.js';
import type { TransferEvent } from '../registry/types.js';
import { transferRenderer } from './transfer.js';

/**
 * Byte progress while blobs upload: bars redrawn in a terminal (cli/transfer.ts), whose own
 * per-blob states then stand for the outcome lines; elsewhere (a CI log) no live lines, and
 * each layer's outcome follows the push as docker prints it, naming a mount's repository.
 */
function transferProgress(quiet: boolean): { onEvent(event: TransferEvent): void; finish(): void; layerLines: boolean } {
  if (quiet || process.stderr.isTTY !== true) return { onEvent() {}, finish() {}, layerLines: !quiet };
  const bars = transferRenderer('tty');
  return { onEvent: (e) => bars.onEvent(e), finish: () => bars.finish(), layerLines: false };
}

/**
 * docker push's lines: each layer's outcome (top layer first; a mount names the repository it
 * came from), then the digest of what the tag names.
 */
export function pushSummary(result: PushResult, shownTag: string, layerLines = true): string {
  const lines: string[] = [];
  for (const b of [...result.blobs].reverse()) {
    if (b.kind !== 'layer' || !layerLines) continue;
    const id = b.digest.slice('sha256:'.length, 'sha256:'.length + 12);
    const how = b.result === 'exists' ? 'Layer already exists' : b.result === 'mounted' ? `Mounted from ${(b.mountFrom ?? []).join(' or ')}` : 'Pushed';
    lines.push(`${id}: ${how}\n`);
  }
  lines.push(`${shownTag}: digest: ${result.digest} size: ${result.descriptor.size}\n`);
  return lines.join('');
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('push')
    .description('Push an image from the kiln store to a registry')
    .argument('<source>', 'image name, digest or ID in the store')
    .argument('[destination]', 'registry reference to push to, host[:port]/repository[:tag] (default: the source name)')
    .option('-q, --quiet', 'print only the pushed reference (name:tag@digest)')
    .option('-a, --all-tags', 'push every stored tag of the source repository')
    .option('--chunk-size <bytes>', 'upload blobs larger than this in chunks of it')
    .action(async (source: string, destination: string | undefined, o: { quiet?: boolean; allTags?: boolean; chunkSize?: string }) => {
      const { root, insecureRegistries } = globals();
      const chunkSize = o.chunkSize === undefined ? undefined : Number(o.chunkSize);
      if (chunkSize !== undefined && (!Number.isInteger(chunkSize) || chunkSize < 1)) {
        throw new KilnError(`--chunk-size must be a positive number of bytes, got "${o.chunkSize}"`, { code: 'invalid' });
      }
      const store = await ContentStore.open(root);
      const pairs = o.allTags ? await allTags(store, source, destination) : [{ from: source, to: destination ?? source }];
      const client = registryClient({ root, insecureRegistries });
      for (const { from, to } of pairs) {
        const dest = parseReference(to);
        // said once the push starts moving blobs (a missing source is an error alone)
        let announced = false;
        const announce = (): void => {
          if (!announced && !o.quiet) process.stderr.write(`The push refers to repository [${dest.repository}]\n`);
          announced = true;
        };
        const progress = transferProgress(o.quiet === true);
        let result: PushResult;
        try {
          result = await pushImage({
            root,
            store,
            client,
            source: from,
            ref: to,
            progress: (event) => {
              announce();
              progress.onEvent(event);
            },
            warn: (m) => process.stderr.write(`WARNING: ${m}\n`),
            ...(chunkSize ? { chunkSize } : {}),
          });
        } finally {
          progress.finish();
        }
        announce();
        if (!o.quiet) process.stderr.write(pushSummary(result, result.tag ?? result.digest, progress.layerLines));
        process.stdout.write(`${result.reference}\n`);
      }
    });
};

/** Every stored tag of the repository `source` names, each to the same tag of `destination` (default: the same repository). */
async function allTags(store: ContentStore, source: string, destination: string | undefined): Promise<Array<{ from: string; to: string }>> {
  const src = parseReference(source);
  if (src.tag !== undefined || src.digest !== undefined) {
    throw new KilnError(`--all-tags pushes a repository: ${source} names a tag or digest`, { code: 'invalid', hint: `write ${src.repository}` });
  }
  const dest = destination === undefined ? src : parseReference(destination);
  if (dest.tag !== undefined || dest.digest !== undefined) {
    throw new KilnError(`--all-tags pushes to a repository: ${destination} names a tag or digest`, { code: 'invalid', hint: `write ${dest.repository}` });
  }
  const tags = (await store.listRefs()).map((r) => splitRepoTag(r.name)).filter((r) => r.repository === src.repository && r.tag !== '<none>');
  if (tags.length === 0) throw new KilnError(`no tags of ${src.repository} in the store`, { code: 'not-found', hint: 'kiln images lists what the store holds' });
  return tags.map((t) => ({ from: `${src.repository}:${t.tag}`, to: `${dest.repository}:${t.tag}` }));
}
