/**
 * The content-store suite (containerd's ContentSuite idea): the expectations of
 * oci/content.ts's roles, run against any implementation. A new one (a registry-backed
 * Provider, say) calls contentSuite with a factory and says which roles it has:
 *
 *   contentSuite('registry', async (t) => ({ store: await openRegistryStore(t) }), { refs: true, leases: false, gc: false });
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { KilnError } from '../../src/errors.js';
import type { GarbageCollector, Ingester, LeaseManager, Provider, RefStore } from '../../src/oci/content.js';
import { digestOf } from '../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../src/oci/types.js';

export interface SuiteStore {
  store: Provider & Ingester & Partial<RefStore & LeaseManager & GarbageCollector>;
  /** Makes a stored blob older than any lease or GC start (GC keeps what is newer). */
  backdate?(digest: string): Promise<void>;
  /** Replaces a stored blob's bytes behind the store's back. */
  corrupt?(digest: string, bytes: Buffer): Promise<void>;
  /** Temp files the store holds now (a failed or aborted write must leave none). */
  leftovers?(): Promise<string[]>;
}

export interface SuiteRoles {
  refs: boolean;
  leases: boolean;
  gc: boolean;
}

async function drain(s: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) {
    await new Promise((r) => setImmediate(r));
    yield Buffer.from(p);
  }
}

const isKiln = (pattern: RegExp) => (e: unknown) => e instanceof KilnError && pattern.test(e.message);

export function contentSuite(name: string, make: (t: TestContext) => Promise<SuiteStore>, roles: SuiteRoles = { refs: true, leases: true, gc: true }): void {
  describe(`content suite: ${name}`, () => {
    const noLeftovers = async (s: SuiteStore): Promise<void> => {
      if (s.leftovers) assert.deepEqual(await s.leftovers(), []);
    };

    test('a written blob reads back whole, as a stream and as JSON, with its size', async (t) => {
      const s = await make(t);
      const { digest, size } = await s.store.writeBlob('hello');
      assert.equal(digest, digestOf('hello'));
      assert.equal(size, 5);
      assert.ok(await s.store.hasBlob(digest));
      assert.equal((await s.store.info(digest))?.size, 5);
      assert.equal((await s.store.readBlob(digest)).toString(), 'hello');
      assert.equal((await drain(s.store.openBlob(digest))).toString(), 'hello');
      // writing the same content again is the same blob
      assert.deepEqual(await s.store.writeBlob(Buffer.from('hello'), digest), { digest, size: 5 });
      const json = await s.store.writeJSON({ b: 1, a: [2] }, MediaType.ociConfig);
      assert.equal(json.mediaType, MediaType.ociConfig);
      // canonical JSON: members in the order given, no whitespace
      assert.equal((await s.store.readBlob(json.digest)).toString(), '{"b":1,"a":[2]}');
      assert.deepEqual(await s.store.readJSON(json.digest), { a: [2], b: 1 });
      const empty = await s.store.writeBlob('');
      assert.equal((await s.store.readBlob(empty.digest)).length, 0);
      assert.equal((await s.store.info(empty.digest))?.size, 0);
      await noLeftovers(s);
    });

    test('a blob that does not match its expected digest is refused and not stored', async (t) => {
      const s = await make(t);
      const wrong = digestOf('something else');
      await assert.rejects(s.store.writeBlob('hello', wrong), isKiln(/digest mismatch/));
      await assert.rejects(s.store.writeBlobFromStream(chunks('hel', 'lo'), wrong), isKiln(/digest mismatch/));
      assert.equal(await s.store.hasBlob(digestOf('hello')), false);
      assert.equal(await s.store.hasBlob(wrong), false);
      const w = await s.store.writer();
      await w.write('hello');
      await assert.rejects(w.commit({ digest: wrong }), isKiln(/digest mismatch/));
      await w.abort();
      assert.equal(await s.store.hasBlob(digestOf('hello')), false);
      await noLeftovers(s);
    });

    test('a stream is stored as it arrives; a source that fails stores nothing', async (t) => {
      const s = await make(t);
      const r = await s.store.writeBlobFromStream(chunks('ab', 'cd', 'ef'), digestOf('abcdef'));
      assert.deepEqual(r, { digest: digestOf('abcdef'), size: 6 });
      assert.equal((await s.store.readBlob(r.digest)).toString(), 'abcdef');
      async function* failing(): AsyncGenerator<Buffer> {
        yield Buffer.from('partial');
        throw new Error('source broke');
      }
      await assert.rejects(s.store.writeBlobFromStream(failing()), /source broke/);
      assert.equal(await s.store.hasBlob(digestOf('partial')), false);
      await noLeftovers(s);
    });

    test('a writer counts what it wrote, checks the expected size, and an aborted one leaves nothing', async (t) => {
      const s = await make(t);
      const w = await s.store.writer();
      await w.write(Buffer.from('12'));
      await w.write('345');
      assert.equal(w.written, 5);
      assert.deepEqual(await w.commit({ digest: digestOf('12345'), size: 5 }), { digest: digestOf('12345'), size: 5 });
      await assert.rejects(w.write('more'), /after commit/);
      assert.equal((await s.store.readBlob(digestOf('12345'))).toString(), '12345');

      const short = await s.store.writer();
      await short.write('123');
      await assert.rejects(short.commit({ size: 5 }), isKiln(/size mismatch.*expected 5 bytes, got 3/));
      await short.abort();
      assert.equal(await s.store.hasBlob(digestOf('123')), false);

      const dropped = await s.store.writer();
      await dropped.write('dropped');
      await dropped.abort();
      assert.equal(await s.store.hasBlob(digestOf('dropped')), false);
      await noLeftovers(s);
    });

    test('concurrent writers of the same content all succeed with one blob', async (t) => {
      const s = await make(t);
      const content = 'x'.repeat(300_000);
      const parts = [content.slice(0, 100_000), content.slice(100_000, 200_000), content.slice(200_000)];
      const viaWriter = async (): Promise<{ digest: string; size: number }> => {
        const w = await s.store.writer();
        for (const p of parts) await w.write(p);
        return w.commit({ digest: digestOf(content) });
      };
      const results = await Promise.all([
        ...Array.from({ length: 4 }, () => s.store.writeBlobFromStream(chunks(...parts), digestOf(content))),
        ...Array.from({ length: 4 }, viaWriter),
        ...Array.from({ length: 2 }, () => s.store.writeBlob(content)),
      ]);
      for (const r of results) assert.deepEqual(r, { digest: digestOf(content), size: content.length });
      assert.equal((await s.store.readBlob(digestOf(content))).toString(), content);
      assert.equal((await s.store.info(digestOf(content)))?.size, content.length);
      await noLeftovers(s);
    });

    test('a missing blob: not there, no info, and reads fail with a KilnError naming it', async (t) => {
      const s = await make(t);
      const d = digestOf('never written');
      assert.equal(await s.store.hasBlob(d), false);
      assert.equal(await s.store.info(d), undefined);
      await assert.rejects(s.store.readBlob(d), isKiln(new RegExp(`${d}.*missing`)));
      await assert.rejects(drain(s.store.openBlob(d)), isKiln(new RegExp(`${d}.*missing`)));
      await assert.rejects(s.store.readJSON(d), isKiln(/missing/));
    });

    test('content altered behind the store is refused on read', { skip: false }, async (t) => {
      const s = await make(t);
      if (!s.corrupt) return t.skip('the implementation cannot be altered behind its back');
      const { digest } = await s.store.writeBlob('original content');
      await s.corrupt(digest, Buffer.from('altered content!'));
      await assert.rejects(s.store.readBlob(digest), isKiln(/corrupt/));
      await assert.rejects(drain(s.store.openBlob(digest)), isKiln(/corrupt/));
    });

    test('refs: set, resolve by name and digest, list, replace and delete', { skip: !roles.refs }, async (t) => {
      const s = await make(t);
      const refs = s.store as Provider & Ingester & RefStore;
      const a = await refs.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] }, MediaType.ociManifest);
      const b = await refs.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [{}] }, MediaType.ociManifest);
      await refs.setRef('app:1', a);
      await refs.setRef('other', b);
      assert.equal((await refs.resolve('app:1'))?.digest, a.digest);
      assert.equal((await refs.resolve('other:latest'))?.digest, b.digest);
      assert.equal((await refs.resolve(a.digest))?.digest, a.digest);
      assert.equal(await refs.resolve('absent:1'), undefined);
      assert.deepEqual(
        (await refs.listRefs()).map((r) => [r.descriptor.digest]).sort(),
        [[a.digest], [b.digest]].sort(),
      );
      await refs.setRef('app:1', b);
      assert.equal((await refs.resolve('app:1'))?.digest, b.digest);
      assert.equal((await refs.listRefs()).length, 2);
      assert.equal(await refs.deleteRef('app:1'), true);
      assert.equal(await refs.deleteRef('app:1'), false);
      assert.equal(await refs.resolve('app:1'), undefined);
      assert.equal((await refs.listRefs()).length, 1);
    });

    test('GC keeps what refs reach through index, manifest, config and layers, and removes the rest', { skip: !roles.gc || !roles.refs }, async (t) => {
      const s = await make(t);
      const store = s.store as Provider & Ingester & RefStore & GarbageCollector;
      if (!s.backdate) return t.skip('GC needs blobs older than its start');
      const layer = { mediaType: MediaType.ociLayerGzip, ...(await store.writeBlob('layer')) };
      const config = await store.writeJSON({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf('l')] } }, MediaType.ociConfig);
      const manifest = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] }, MediaType.ociManifest);
      const index = await store.writeJSON({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [manifest] }, MediaType.ociIndex);
      const loose = await store.writeBlob('loose');
      const extra = await store.writeBlob('kept by an extra root');
      for (const d of [layer, config, manifest, index, loose, extra]) await s.backdate(d.digest);
      await store.setRef('multi:1', index as Descriptor);
      const first = await store.gc([extra.digest]);
      assert.equal(first.removedBlobs, 1);
      for (const d of [layer, config, manifest, index, extra]) assert.ok(await store.hasBlob(d.digest), `${d.digest} kept`);
      assert.equal(await store.hasBlob(loose.digest), false);
      await store.deleteRef('multi:1');
      const second = await store.gc();
      assert.equal(second.removedBlobs, 5);
      for (const d of [layer, config, manifest, index, extra]) assert.equal(await store.hasBlob(d.digest), false);
      await noLeftovers(s);
    });

    test('a lease protects what it holds from GC until it is released', { skip: !roles.gc || !roles.leases }, async (t) => {
      const s = await make(t);
      const store = s.store as Provider & Ingester & LeaseManager & GarbageCollector;
      if (!s.backdate) return t.skip('GC needs blobs older than its start');
      const held = await store.writeBlob('held by a lease');
      const other = await store.writeBlob('held by nothing');
      await s.backdate(held.digest);
      await s.backdate(other.digest);
      const lease = await store.lease();
      let released = false;
      t.after(async () => {
        if (!released) await lease.release();
      });
      await lease.add(held.digest);
      assert.ok((await store.leased()).digests.has(held.digest));
      await store.gc();
      assert.ok(await store.hasBlob(held.digest));
      assert.equal(await store.hasBlob(other.digest), false);
      await lease.release();
      released = true;
      assert.equal((await store.leased()).digests.has(held.digest), false);
      await store.gc();
      assert.equal(await store.hasBlob(held.digest), false);
    });
  });
}
