/**
 * kiln imagetools inspect|create, in the store and against a real docker-registry; the created
 * indexes read back by skopeo and validated against the OCI schemas.
 *
 * The two single-platform sources are the busybox rootfs imported twice, recorded as
 * linux/amd64 and linux/arm64 (nothing here runs them: only the index is under test).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { busyboxRootfsTar, haveTool, runCommand, runKiln, tempDir } from '../helpers.js';
import { haveRegistry, startRegistry, type Registry } from '../registry/harness.js';
import { validateOCI } from '../../src/oci/schema.js';
import type { ImageIndex } from '../../src/oci/types.js';

const env = { SOURCE_DATE_EPOCH: '1700000000' };
const sha = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('kiln imagetools', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  const kiln = (args: string[]) => runKiln(args, { root, env });

  before(async () => {
    const t = await tempDir('kiln-imagetools-');
    root = t.dir;
    cleanup = t.cleanup;
    const tar = await busyboxRootfsTar();
    for (const arch of ['amd64', 'arm64']) {
      const r = await kiln(['import', '--platform', `linux/${arch}`, '-c', `ENV ARCH=${arch}`, tar, `bb:${arch}`]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => cleanup());

  it('create combines stored images into an index in the store; inspect shows each platform', async () => {
    const c = await kiln(['imagetools', 'create', '-t', 'multi:1', '-t', 'multi:also', 'bb:amd64', 'bb:arm64']);
    assert.equal(c.code, 0, c.stderr);
    const refs = c.stdout.trim().split('\n');
    assert.equal(refs.length, 2, c.stdout);
    const digest = refs[0].split('@')[1];
    assert.equal(refs[1], `multi:also@${digest}`);

    const raw = await kiln(['imagetools', 'inspect', '--raw', 'multi:1']);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha(raw.stdout), digest, 'the raw bytes are the named index');
    const index = JSON.parse(raw.stdout) as ImageIndex;
    assert.deepEqual(validateOCI('index', index), []);
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`),
      ['linux/amd64', 'linux/arm64'],
    );
    for (const [i, arch] of ['amd64', 'arm64'].entries()) {
      const one = JSON.parse((await kiln(['inspect', `bb:${arch}`])).stdout) as { digest: string };
      assert.equal(index.manifests[i].digest, one.digest, 'the entries are the sources, unchanged');
    }

    const text = await kiln(['imagetools', 'inspect', 'multi:1']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^Name:\\s+multi:1\\nMediaType:\\s+application/vnd\\.oci\\.image\\.index\\.v1\\+json\\nDigest:\\s+${digest}\\n\\nManifests:\\n`));
    assert.match(text.stdout, /Platform:\s+linux\/amd64\n[\s\S]*Platform:\s+linux\/arm64\n/);

    const json = await kiln(['imagetools', 'inspect', '--format', 'json', 'multi:1']);
    const parsed = JSON.parse(json.stdout) as { manifest: { digest: string }; image: Record<string, { config: { Env: string[] } }> };
    assert.equal(parsed.manifest.digest, digest);
    assert.deepEqual(Object.keys(parsed.image), ['linux/amd64', 'linux/arm64']);
    assert.ok(parsed.image['linux/arm64'].config.Env.includes('ARCH=arm64'));

    // the stored index is an image like a built one: inspect --platform picks from it
    const arm = JSON.parse((await kiln(['inspect', '--platform', 'linux/arm64', 'multi:1'])).stdout) as { digest: string; index?: { digest: string } };
    assert.equal(arm.digest, index.manifests[1].digest);
    assert.equal(arm.index?.digest, digest);

    // a deterministic index: the same sources give the same digest again
    const again = await kiln(['imagetools', 'create', '--dry-run', 'bb:amd64', 'bb:arm64']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), index);

    // an index as a source gives its manifests; a manifest listed twice is listed once
    const nested = await kiln(['imagetools', 'create', '-t', 'multi:2', 'multi:1', 'bb:amd64']);
    assert.equal(nested.code, 0, nested.stderr);
    const two = JSON.parse((await kiln(['imagetools', 'inspect', '--raw', 'multi:2'])).stdout) as ImageIndex;
    assert.deepEqual(two, index);
  });

  it('--dry-run prints the index and stores nothing; annotations land on the index and its entries', async () => {
    const c = await kiln(['imagetools', 'create', '--dry-run', '-t', 'dry:1', '--annotation', 'org.example.a=1', '--annotation', 'index:org.example.b=2', '--annotation', 'manifest-descriptor:org.example.c=3', 'bb:amd64']);
    assert.equal(c.code, 0, c.stderr);
    const index = JSON.parse(c.stdout) as ImageIndex;
    assert.deepEqual(validateOCI('index', index), []);
    assert.deepEqual(index.annotations, { 'org.example.a': '1', 'org.example.b': '2' });
    assert.deepEqual(index.manifests[0].annotations, { 'org.example.c': '3' });
    const missing = await kiln(['inspect', 'dry:1']);
    assert.notEqual(missing.code, 0, 'a dry run names nothing');
  });

  it('bad input is a clear error', async () => {
    const bad = await kiln(['imagetools', 'create', '-t', 'x:1', '--annotation', 'manifest:k=v', 'bb:amd64']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--annotation "manifest:k=v" is not KEY=VALUE/);
    const none = await kiln(['imagetools', 'create', 'bb:amd64']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /needs -t REF/);
    const digestTarget = await kiln(['imagetools', 'create', '-t', `x@sha256:${'a'.repeat(64)}`, 'bb:amd64']);
    assert.equal(digestTarget.code, 1);
    assert.match(digestTarget.stderr, /a target is a tag, not a digest/);
    const fmt = await kiln(['imagetools', 'inspect', '--format', 'yaml', 'bb:amd64']);
    assert.equal(fmt.code, 1);
    assert.match(fmt.stderr, /unknown --format "yaml"/);
    const nowhere = await kiln(['imagetools', 'inspect', '127.0.0.1:1/nothere:1']);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /127\.0\.0\.1:1\/nothere:1 is not in the store, and its registry answered: /);
    for (const r of [bad, none, digestTarget, fmt, nowhere]) assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  describe('against a registry', { skip: haveRegistry() ? false : 'docker-registry is not installed' }, () => {
    let reg: Registry;
    before(async () => {
      reg = await startRegistry();
      for (const arch of ['amd64', 'arm64']) {
        const p = await kiln(['push', `bb:${arch}`, `${reg.host}/src/${arch}:1`]);
        assert.equal(p.code, 0, p.stderr);
      }
    });
    after(() => reg?.stop());

    const skopeoRaw = async (ref: string) => {
      const r = await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };

    it('create combines registry images (another repository, blobs mounted) and tags the index; skopeo reads it', async () => {
      const target = `${reg.host}/dst/multi`;
      const c = await kiln(['imagetools', 'create', '-t', `${target}:1`, '-t', `${target}:latest`, '--annotation', 'index:org.example.k=v', `docker://${reg.host}/src/amd64:1`, `${reg.host}/src/arm64:1`]);
      assert.equal(c.code, 0, c.stderr);
      const [first, second] = c.stdout.trim().split('\n');
      const digest = first.split('@')[1];
      assert.equal(first, `${target}:1@${digest}`);
      assert.equal(second, `${target}:latest@${digest}`);

      if (haveTool('skopeo')) {
        const raw = await skopeoRaw(`${target}:1`);
        assert.equal(sha(raw), digest);
        const index = JSON.parse(raw) as ImageIndex;
        assert.deepEqual(validateOCI('index', index), []);
        assert.deepEqual(index.annotations, { 'org.example.k': 'v' });
        assert.deepEqual(index.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
        // each platform's manifest and blobs are in the target repository
        for (const [i, arch] of ['amd64', 'arm64'].entries()) {
          const m = await skopeoRaw(`${target}@${index.manifests[i].digest}`);
          assert.equal(sha(m), index.manifests[i].digest);
          assert.equal(m, await skopeoRaw(`${reg.host}/src/${arch}:1`), 'the manifest is copied byte for byte');
        }
        const out = await tempDir('kiln-imagetools-copy-');
        try {
          const copy = await runCommand('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${target}:latest`, `oci:${out.dir}/layout:multi`]);
          assert.equal(copy.code, 0, copy.stderr);
        } finally {
          await out.cleanup();
        }
      }

      // inspect reads the registry: docker:// or a name the store does not hold
      const text = await kiln(['imagetools', 'inspect', `${target}:1`]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`Digest:\\s+${digest}\\n`));
      assert.match(text.stdout, /Platform:\s+linux\/amd64\n[\s\S]*Platform:\s+linux\/arm64\n/);
      const raw = await kiln(['imagetools', 'inspect', '--raw', `docker://${target}:latest`]);
      assert.equal(sha(raw.stdout), digest);
    });

    it('create from the store to a docker:// target pushes the index; sources mixing store and registry are refused', async () => {
      const target = `${reg.host}/fromstore/multi:1`;
      const c = await kiln(['imagetools', 'create', '-t', `docker://${target}`, 'bb:amd64', 'bb:arm64']);
      assert.equal(c.code, 0, c.stderr);
      const digest = c.stdout.trim().split('@')[1];
      if (haveTool('skopeo')) {
        const raw = await skopeoRaw(target);
        assert.equal(sha(raw), digest);
        const index = JSON.parse(raw) as ImageIndex;
        assert.deepEqual(validateOCI('index', index), []);
        assert.deepEqual(index.manifests.map((m) => m.platform?.architecture), ['amd64', 'arm64']);
      }
      const mixed = await kiln(['imagetools', 'create', '-t', `${reg.host}/mixed/x:1`, 'bb:amd64', `${reg.host}/src/arm64:1`]);
      assert.equal(mixed.code, 1);
      assert.match(mixed.stderr, /bb:amd64 is in the store, the other sources in a registry/);
      const tags = await fetch(`${reg.url}/v2/mixed/x/tags/list`);
      assert.notEqual(tags.status, 200, 'nothing was pushed');
    });

    it('create into another registry streams the blobs from the source registry', async () => {
      const other = await startRegistry();
      try {
        const target = `${other.host}/copied/multi:1`;
        const c = await kiln(['imagetools', 'create', '-t', target, `${reg.host}/src/amd64:1`, `${reg.host}/src/arm64:1`]);
        assert.equal(c.code, 0, c.stderr);
        const digest = c.stdout.trim().split('@')[1];
        if (haveTool('skopeo')) {
          assert.equal(sha(await skopeoRaw(target)), digest);
          const out = await tempDir('kiln-imagetools-copy2-');
          try {
            // every blob of both platforms is in the other registry
            const copy = await runCommand('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${target}`, `oci:${out.dir}/layout:multi`]);
            assert.equal(copy.code, 0, copy.stderr);
          } finally {
            await out.cleanup();
          }
        }
      } finally {
        await other.stop();
      }
    });

    it('a missing source is a clear error and tags nothing', async () => {
      const r = await kiln(['imagetools', 'create', '-t', `${reg.host}/dst/none:1`, `${reg.host}/src/amd64:1`, `${reg.host}/src/nothere:1`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /src\/nothere has no image 1/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const tags = await fetch(`${reg.url}/v2/dst/none/tags/list`);
      assert.notEqual(tags.status, 200);
    });
  });
});
