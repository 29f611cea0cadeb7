/**
 * Images for the pull tests, put into a real registry by a peer (skopeo copy) from archives
 * `kiln save` wrote: the busybox of a test workspace, variants of it, and a two-platform
 * index made from it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCommand, runKiln, tempDir } from '../helpers.js';

export async function mustKiln(root: string, args: string[], env?: Record<string, string>): Promise<string> {
  const r = await runKiln(args, { root, env });
  assert.equal(r.code, 0, `kiln ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function skopeo(args: string[]): Promise<string> {
  const r = await runCommand('skopeo', args);
  assert.equal(r.code, 0, `skopeo ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * Pushes `name` from the kiln root to `dest` (host/repo:tag) with skopeo, from a kiln save
 * archive (oci or docker); `authfile`: a docker config.json with the registry's credentials.
 */
export async function pushWithSkopeo(root: string, name: string, dest: string, format: 'oci' | 'docker' = 'oci', authfile?: string): Promise<void> {
  const t = await tempDir('kiln-pull-push-');
  try {
    const archive = path.join(t.dir, 'image.tar');
    await mustKiln(root, ['save', '--format', format, '-o', archive, name]);
    await skopeo(['copy', '--quiet', '--dest-tls-verify=false', ...(authfile ? ['--dest-authfile', authfile] : []), `${format === 'oci' ? 'oci-archive' : 'docker-archive'}:${archive}`, `docker://${dest}`]);
  } finally {
    await t.cleanup();
  }
}

/** The digest `dest` has in the registry, as skopeo reads it. */
export async function remoteDigest(dest: string): Promise<string> {
  const out = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${dest}`])) as { Digest: string };
  return out.Digest;
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Pushes an index of two images made from `name`'s manifest: this machine's as it is, and
 * one whose config says linux/arm64 (same layers: enough for choosing a manifest, not for
 * running it). Gives the index digest and the two manifest digests.
 */
export async function pushTwoPlatforms(root: string, name: string, dest: string): Promise<{ index: string; amd64: string; arm64: string }> {
  const t = await tempDir('kiln-pull-index-');
  try {
    const archive = path.join(t.dir, 'image.tar');
    const layout = path.join(t.dir, 'layout');
    await mustKiln(root, ['save', '--format', 'oci', '-o', archive, name]);
    await fs.mkdir(layout);
    const untar = await runCommand('tar', ['-xf', archive, '-C', layout]);
    assert.equal(untar.code, 0, untar.stderr);
    const blobs = path.join(layout, 'blobs', 'sha256');
    const read = async (digest: string): Promise<Buffer> => fs.readFile(path.join(blobs, digest.slice(7)));
    const write = async (data: string): Promise<{ digest: string; size: number }> => {
      const digest = sha256(data);
      await fs.writeFile(path.join(blobs, digest.slice(7)), data);
      return { digest, size: Buffer.byteLength(data) };
    };
    const top = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number; mediaType: string }> };
    const hostManifest = top.manifests[0];
    const manifest = JSON.parse((await read(hostManifest.digest)).toString()) as { config: { digest: string; size: number; mediaType: string } };
    const config = JSON.parse((await read(manifest.config.digest)).toString()) as Record<string, unknown>;
    const armConfig = await write(JSON.stringify({ ...config, architecture: 'arm64' }));
    const armManifest = await write(JSON.stringify({ ...manifest, config: { ...manifest.config, ...armConfig } }));
    const hostArch = String(config.architecture);
    assert.notEqual(hostArch, 'arm64', 'these tests expect a host that is not arm64');
    const index = await write(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: hostManifest.mediaType, digest: hostManifest.digest, size: hostManifest.size, platform: { architecture: hostArch, os: 'linux' } },
          { mediaType: hostManifest.mediaType, ...armManifest, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
    await fs.writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }],
      }),
    );
    await skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${dest}`]);
    return { index: index.digest, amd64: hostManifest.digest, arm64: armManifest.digest };
  } finally {
    await t.cleanup();
  }
}

