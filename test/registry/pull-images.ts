/**
 * Images for the pull tests, put into a real registry by a peer (skopeo copy) from archives
 * `kiln save` wrote: the busybox of a test workspace, variants of it, and a two-platform
 * index made from it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** Pushes `name` from the kiln root to `dest` (host/repo:tag) with skopeo, from a kiln save archive (oci or docker). */
export async function pushWithSkopeo(root: string, name: string, dest: string, format: 'oci' | 'docker' = 'oci'): Promise<void> {
  const t = await tempDir('kiln-pull-push-');
  try {
    const archive = path.join(t.dir, 'image.tar');
    await mustKiln(root, ['save', '--format', format, '-o', archive, name]);
    await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `${format === 'oci' ? 'oci-archive' : 'docker-archive'}:${archive}`, `docker://${dest}`]);
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

export interface CountingProxy {
  /** "127.0.0.1:PORT": references through it name this host. */
  host: string;
  /** Every request passed on, in order. */
  requests: Array<{ method: string; path: string }>;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy in front of a plain-HTTP registry that records each request it passes on;
 * a response to a GET whose path `corrupt` accepts has its first byte flipped (same length).
 */
export async function countingProxy(target: string, corrupt: (path: string) => boolean = () => false): Promise<CountingProxy> {
  const [targetHost, targetPort] = target.split(':');
  const requests: CountingProxy['requests'] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    const up = http.request({ host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: { ...req.headers, host: target }, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      let first = req.method === 'GET' && r.statusCode === 200 && corrupt(req.url ?? '');
      r.on('data', (chunk: Buffer) => {
        if (first && chunk.length > 0) {
          chunk = Buffer.from(chunk);
          chunk[0] ^= 0xff;
          first = false;
        }
        res.write(chunk);
      });
      r.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
