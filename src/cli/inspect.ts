import type { Command } from 'commander';
import type { Registrar } from './main.js';
import { KilnError } from '../errors.js';
import { ContentStore } from '../oci/store.js';
import { loadImage } from '../oci/image.js';
import { parsePlatform } from '../oci/platform.js';
import type { ImageIndex, Platform } from '../oci/types.js';
import { registryClient } from '../registry/settings.js';
import type { RegistryClient } from '../registry/client.js';
import { remoteConfig, resolveRemoteImage } from '../registry/pull.js';

const REMOTE = 'docker://';

/** A time as Go's encoding/json writes it (RFC 3339, no trailing zeros in the fraction), as skopeo shows it. */
export function goTime(created: string | undefined): string | undefined {
  const m = created === undefined ? null : /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(created);
  if (!m) return created;
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  return `${m[1]}${fraction ? `.${fraction}` : ''}${m[3]}`;
}

/**
 * `kiln inspect docker://REF`: the remote image as `skopeo inspect` shows it, read from the
 * registry (manifest, index, config; never a layer). `raw`: the bytes of what the reference
 * names (the index, for a multi-platform image), exactly as served.
 */
async function inspectRemote(ref: string, o: { raw?: boolean; platform?: Platform }, settings: { root: string; insecureRegistries: string[] }): Promise<void> {
  if (ref === '') throw new KilnError('docker:// needs an image reference after it', { code: 'invalid', hint: 'write kiln inspect docker://HOST/REPO:TAG' });
  const client = registryClient(settings);
  try {
    await printRemote(client, ref, o);
  } finally {
    client.close();
  }
}

async function printRemote(client: RegistryClient, ref: string, o: { raw?: boolean; platform?: Platform }): Promise<void> {
  const image = await resolveRemoteImage(client, ref, o.platform);
  if (o.raw) {
    process.stdout.write(image.top.bytes);
    return;
  }
  const [config, tags] = await Promise.all([remoteConfig(image), image.repository.listTags()]);
  const cc = config.config ?? {};
  const out: Record<string, unknown> = {
    Name: image.reference.repository,
    Digest: image.top.descriptor.digest,
    RepoTags: tags,
    Created: goTime(config.created),
    DockerVersion: (config as { docker_version?: string }).docker_version ?? '',
    Labels: cc.Labels ?? null,
    Architecture: config.architecture,
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: config.os,
    Layers: image.parsed.layers.map((l) => l.digest),
    Env: cc.Env ?? null,
  };
  process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
}

export const register: Registrar = (program: Command, globals) => {
  program
    .command('inspect')
    .description('Show the manifest and config of an image in the kiln store, as JSON; docker://REF reads a registry (no layers are pulled)')
    .argument('<name>', 'image name, digest or ID; or docker://REF for an image in a registry')
    .option('--platform <os/arch>', "the platform to show for a multi-platform image (default: this machine's)")
    .option('--raw', 'with docker://REF: print the manifest (or index) exactly as the registry serves it')
    .action(async (name: string, o: { platform?: string; raw?: boolean }) => {
      const platform = o.platform ? parsePlatform(o.platform) : undefined;
      if (name.startsWith(REMOTE)) return inspectRemote(name.slice(REMOTE.length), { raw: o.raw, platform }, globals());
      if (o.raw) throw new KilnError('--raw prints what a registry serves', { code: 'invalid', hint: `write kiln inspect ${REMOTE}${name} --raw` });
      const store = await ContentStore.open(globals().root);
      const img = await loadImage(store, name, platform);
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
