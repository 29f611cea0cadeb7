import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ContentStore } from '../../src/oci/store.js';
import { digestOf } from '../../src/oci/digest.js';
import { KilnError } from '../../src/errors.js';
import { MediaType, RefNameAnnotation, type Descriptor } from '../../src/oci/types.js';
import { validateOCI } from '../../src/oci/schema.js';
import { tempDir } from './util.js';

async function fakeImage(store: ContentStore, seed: string): Promise<{ manifest: Descriptor; config: Descriptor; layer: Descriptor }> {
  const layerBlob = await store.writeBlob(`layer ${seed}`);
  const layer = { mediaType: MediaType.ociLayerGzip, ...layerBlob };
  const config = await store.writeJSON(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(seed)] } },
    MediaType.ociConfig,
  );
  const manifest = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] }, MediaType.ociManifest);
  return { manifest, config, layer };
}

async function streamToBuffer(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c);
  return Buffer.concat(chunks);
}

test('open creates a valid OCI layout and is idempotent', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  await ContentStore.open(root);
  assert.deepEqual(validateOCI('layout', JSON.parse(readFileSync(path.join(root, 'oci-layout'), 'utf8'))), []);
  assert.deepEqual(validateOCI('index', JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8'))), []);
  assert.ok(readdirSync(path.join(root, 'blobs', 'sha256')).length === 0);
  assert.equal(store.tmpDir(), path.join(root, 'tmp'));
  assert.deepEqual(readdirSync(store.tmpDir()), []);
});

test('open refuses a directory with a foreign oci-layout', async (t) => {
  const root = tempDir(t);
  writeFileSync(path.join(root, 'oci-layout'), '{"imageLayoutVersion":"9.9"}');
  await assert.rejects(ContentStore.open(root), (e: unknown) => e instanceof KilnError && /not an OCI image layout/.test(e.message));
});

test('blobs are written atomically, deduplicated and verified', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const { digest, size } = await store.writeBlob('hello');
  assert.equal(digest, digestOf('hello'));
  assert.equal(size, 5);
  assert.ok(await store.hasBlob(digest));
  assert.equal((await store.readBlob(digest)).toString(), 'hello');
  assert.equal((await streamToBuffer(store.openBlob(digest))).toString(), 'hello');
  assert.deepEqual(await store.writeBlob(Buffer.from('hello'), digest), { digest, size: 5 });
  await assert.rejects(store.writeBlob('hello', digestOf('other')), (e: unknown) => e instanceof KilnError && /digest mismatch/.test(e.message));

  const streamed = await store.writeBlobFromStream((async function* () {
    yield Buffer.from('str');
    yield Buffer.from('eam');
  })());
  assert.deepEqual(streamed, { digest: digestOf('stream'), size: 6 });
  await assert.rejects(
    store.writeBlobFromStream((async function* () {
      yield Buffer.from('x');
    })(), digestOf('y')),
    /digest mismatch/,
  );
  const fromNodeStream = await store.writeBlobFromStream((await import('node:fs')).createReadStream(store.blobPath(digest)));
  assert.equal(fromNodeStream.digest, digest);
  // nothing left behind in tmp/
  assert.deepEqual(readdirSync(store.tmpDir()), []);
  assert.equal(readFileSync(store.blobPath(digestOf('stream')), 'utf8'), 'stream');
});

test('a corrupt blob fails reads with a KilnError naming the blob', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const { digest } = await store.writeBlob('{"a":1}');
  writeFileSync(store.blobPath(digest), '{"a":2}');
  const corrupt = (e: unknown) => e instanceof KilnError && e.message.includes(digest) && /corrupt/.test(e.message);
  await assert.rejects(store.readBlob(digest), corrupt);
  await assert.rejects(store.readJSON(digest), corrupt);
  await assert.rejects(streamToBuffer(store.openBlob(digest)), corrupt);
  const missing = digestOf('never written');
  await assert.rejects(store.readBlob(missing), (e: unknown) => e instanceof KilnError && /missing/.test(e.message));
  await assert.rejects(streamToBuffer(store.openBlob(missing)), (e: unknown) => e instanceof KilnError && /missing/.test(e.message));
  assert.throws(() => store.blobPath('sha256:nothex'), KilnError);
});

test('refs: set, resolve by name, digest, name@digest and ID prefix; list; delete', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const a = await fakeImage(store, 'a');
  const b = await fakeImage(store, 'b');
  await store.setRef('app', a.manifest);
  await store.setRef('localhost:5000/team/app:1', a.manifest);
  await store.setRef('other:2', b.manifest);
  assert.deepEqual(await store.resolve('app:latest'), a.manifest);
  assert.deepEqual(await store.resolve('app'), a.manifest);
  assert.deepEqual(await store.resolve('localhost:5000/team/app:1'), a.manifest);
  assert.equal(await store.resolve('localhost:5000/team/app'), undefined);
  assert.deepEqual(await store.resolve(b.manifest.digest), b.manifest);
  assert.deepEqual(await store.resolve(`whatever@${b.manifest.digest}`), b.manifest);
  assert.deepEqual(await store.resolve(b.manifest.digest.slice(7, 19)), b.manifest);
  assert.equal(await store.resolve('nope'), undefined);
  await assert.rejects(store.resolve('Bad:Name!'), KilnError);
  // a manifest that no ref names is still found by digest
  const c = await fakeImage(store, 'c');
  assert.deepEqual(await store.resolve(c.manifest.digest), c.manifest);
  assert.equal(await store.resolve(c.layer.digest), undefined);

  const refs = await store.listRefs();
  assert.deepEqual(refs.map((r) => r.name), ['app:latest', 'localhost:5000/team/app:1', 'other:2']);
  // retagging replaces in place
  await store.setRef('app:latest', b.manifest);
  assert.deepEqual(await store.resolve('app'), b.manifest);
  assert.equal((await store.listRefs()).length, 3);
  const index = JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8'));
  assert.deepEqual(validateOCI('index', index), []);
  assert.equal(index.manifests[0].annotations[RefNameAnnotation], 'app:latest');

  assert.equal(await store.deleteRef('app'), true);
  assert.equal(await store.deleteRef('app'), false);
  assert.equal(await store.resolve('app'), undefined);
  await assert.rejects(store.setRef('Bad', a.manifest), KilnError);
  // a name by digest (an image pulled by digest) names that digest and nothing else
  await assert.rejects(store.setRef(`app@${b.manifest.digest}`, a.manifest), /digest/);
  await assert.rejects(store.setRef(`app:1@${a.manifest.digest}`, a.manifest), /digest/);
  await store.setRef(`app@${a.manifest.digest}`, a.manifest);
  assert.ok((await store.listRefs()).some((r) => r.name === `app@${a.manifest.digest}` && r.descriptor.digest === a.manifest.digest));
  assert.deepEqual(await store.resolve(`app@${a.manifest.digest}`), a.manifest);
  assert.equal(await store.deleteRef(`app@${a.manifest.digest}`), true);
  assert.deepEqual(readdirSync(store.tmpDir()), []);
});

test('gc keeps what refs and extra roots reach and removes the rest and stale temp files', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const a = await fakeImage(store, 'a');
  const b = await fakeImage(store, 'b');
  const c = await fakeImage(store, 'c');
  const loose = await store.writeBlob('loose');
  await store.setRef('a:1', a.manifest);
  // an index naming b's manifest keeps b alive through the index
  const idx = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [b.manifest] }, MediaType.ociIndex);
  await store.setRef('multi:1', idx);
  // a temp file of a dead process, and one of ours
  const deadTmp = path.join(store.tmpDir(), 'oci-blob-999999999-00ff');
  writeFileSync(deadTmp, 'x'.repeat(100));
  const liveTmp = store.tempPath('blob');
  writeFileSync(liveTmp, 'mine');
  const foreign = path.join(store.tmpDir(), 'someone-elses');
  writeFileSync(foreign, 'keep');

  const result = await store.gc([c.config.digest]);
  const alive = async (d: string) => store.hasBlob(d);
  for (const d of [a.manifest, a.config, a.layer, b.manifest, b.config, b.layer, idx]) assert.ok(await alive(d.digest), d.digest);
  assert.ok(await alive(c.config.digest));
  assert.ok(!(await alive(c.manifest.digest)));
  assert.ok(!(await alive(c.layer.digest)));
  assert.ok(!(await alive(loose.digest)));
  assert.equal(result.removedBlobs, 3);
  assert.equal(result.freedBytes, c.manifest.size + c.layer.size + loose.size + 100);
  await assert.rejects(fsp.access(deadTmp));
  await fsp.access(liveTmp);
  await fsp.access(foreign);

  // extra roots that are manifests keep their children
  const d = await fakeImage(store, 'd');
  await store.gc([d.manifest.digest]);
  assert.ok(await alive(d.layer.digest));
  await store.gc();
  assert.ok(!(await alive(d.layer.digest)));
  // keepNewerThanMs protects fresh writes
  const fresh = await store.writeBlob('fresh');
  assert.equal((await store.gc([], { keepNewerThanMs: 60_000 })).removedBlobs, 0);
  assert.ok(await alive(fresh.digest));
});

test('withLock excludes concurrent holders in one process and breaks a stale lock', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  let inside = 0;
  let maxInside = 0;
  await Promise.all(
    Array.from({ length: 10 }, () =>
      store.withLock('test', async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 2));
        // re-entrant within the same call chain
        await store.withLock('test', async () => undefined);
        inside--;
      }),
    ),
  );
  assert.equal(maxInside, 1);
  // a lock left by a dead process is broken
  const lockFile = path.join(root, 'locks', 'index.lock');
  writeFileSync(lockFile, `999999999\n${(await import('node:os')).hostname()}\nold\n`);
  const a = await fakeImage(store, 'a');
  await store.setRef('after-stale:1', a.manifest);
  assert.deepEqual(await store.resolve('after-stale:1'), a.manifest);
  await assert.rejects(fsp.access(lockFile));
});

test('two processes tagging at once never lose or corrupt a ref', async (t) => {
  const root = tempDir(t);
  const store = await ContentStore.open(root);
  const a = await fakeImage(store, 'a');
  const storeModule = new URL('../../src/oci/store.js', import.meta.url).href;
  const perProcess = 40;
  const child = (id: number) =>
    new Promise<void>((resolve, reject) => {
      const script = `
        const { ContentStore } = await import(${JSON.stringify(storeModule)});
        const store = await ContentStore.open(${JSON.stringify(root)});
        const desc = ${JSON.stringify(a.manifest)};
        for (let i = 0; i < ${perProcess}; i++) await store.setRef('p${id}/img:' + i, desc);
      `;
      const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child ${id} exited ${code}: ${err}`))));
    });
  await Promise.all([child(1), child(2)]);
  const names = (await store.listRefs()).map((r) => r.name).sort();
  assert.equal(names.length, perProcess * 2);
  for (const id of [1, 2]) for (let i = 0; i < perProcess; i++) assert.ok(names.includes(`p${id}/img:${i}`), `p${id}/img:${i}`);
  assert.deepEqual(validateOCI('index', JSON.parse(readFileSync(path.join(root, 'index.json'), 'utf8'))), []);
  assert.deepEqual(readdirSync(store.tmpDir()), []);
  assert.deepEqual(readdirSync(path.join(root, 'locks')).filter((f) => f.endsWith('.lock')), []);
});
