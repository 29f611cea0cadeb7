/** `-o` and `--annotation` parsing: buildx's CSV syntax, its shorthands, and clear errors for what it does not take. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAnnotationFlag, parseOutput } from '../../src/export/output-spec.js';
import { outputExporters } from '../../src/export/outputs.js';
import { isKilnError } from '../../src/errors.js';

function fails(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isKilnError(e), `a KilnError, got ${String(e)}`);
    assert.equal(e.code, 'invalid');
    assert.match(e.message, pattern);
    assert.ok(e.hint, 'with a hint');
    return true;
  });
}

test('the shorthands: DIR is type=local, - is a tar on stdout, local to stdout is tar', () => {
  assert.deepEqual(parseOutput('out/dir'), { type: 'local', dest: 'out/dir', annotations: [] });
  assert.deepEqual(parseOutput('-'), { type: 'tar', dest: '-', annotations: [] });
  assert.equal(parseOutput('type=local,dest=-').type, 'tar');
});

test('every option of the image outputs', () => {
  const oci = parseOutput('type=oci,dest=a.tar,tar=false,name=r/a:1,compression=zstd,force-compression=true,oci-mediatypes=true,rewrite-timestamp=true');
  assert.deepEqual(oci, {
    type: 'oci',
    dest: 'a.tar',
    tar: false,
    names: ['r/a:1'],
    compression: { compression: 'zstd', force: true },
    ociMediatypes: true,
    rewriteTimestamp: true,
    annotations: [],
  });
  assert.deepEqual(parseOutput('type=image,"name=a:1,b:2",push=true').names, ['a:1', 'b:2']);
  assert.equal(parseOutput('type=image,push=true').push, true);
  assert.equal(parseOutput('type=registry').push, true);
  assert.deepEqual(parseOutput('type=image,compression=uncompressed').compression, { compression: 'none' });
  assert.deepEqual(parseOutput('type=oci,dest=x,compression=gzip,compression-level=9').compression, { compression: 'gzip', level: 9 });
  assert.deepEqual(parseOutput('type=oci,dest=x,compression=zstd,compression-level=22').compression, { compression: 'zstd', level: 22 });
  assert.equal(parseOutput('type=oci,dest=x,oci-mediatypes=false').ociMediatypes, false);
});

test('annotations: every type, the default, and per platform', () => {
  const spec = parseOutput(
    'type=image,annotation.a=1,annotation-index.b=2,annotation-manifest.c=3,annotation-index-descriptor.d=4,annotation-manifest-descriptor.e=5,annotation[linux/arm64].f=6,"annotation.g=x,y"',
  );
  assert.deepEqual(spec.annotations, [
    { target: 'manifest', platform: undefined, key: 'a', value: '1' },
    { target: 'index', platform: undefined, key: 'b', value: '2' },
    { target: 'manifest', platform: undefined, key: 'c', value: '3' },
    { target: 'index-descriptor', platform: undefined, key: 'd', value: '4' },
    { target: 'manifest-descriptor', platform: undefined, key: 'e', value: '5' },
    { target: 'manifest', platform: { os: 'linux', architecture: 'arm64' }, key: 'f', value: '6' },
    { target: 'manifest', platform: undefined, key: 'g', value: 'x,y' },
  ]);
  assert.deepEqual(parseAnnotationFlag('org.opencontainers.image.title=T'), [{ target: 'manifest', key: 'org.opencontainers.image.title', value: 'T' }]);
  assert.deepEqual(parseAnnotationFlag('index,manifest:k=v=w'), [
    { target: 'index', platform: undefined, key: 'k', value: 'v=w' },
    { target: 'manifest', platform: undefined, key: 'k', value: 'v=w' },
  ]);
  assert.deepEqual(parseAnnotationFlag('manifest[linux/amd64]:k=v'), [{ target: 'manifest', platform: { os: 'linux', architecture: 'amd64' }, key: 'k', value: 'v' }]);
});

test('what buildx does not take is a clear error', () => {
  fails(() => parseOutput('type=ftp,dest=x'), /unknown output type "ftp"/);
  fails(() => parseOutput('dest=x'), /no type=/);
  fails(() => parseOutput('type=local'), /type=local needs dest=/);
  fails(() => parseOutput('type=oci'), /type=oci needs dest=/);
  fails(() => parseOutput('type=local,dest=d,compression=gzip'), /type=local has no option "compression"/);
  fails(() => parseOutput('type=oci,dest=x,colour=red'), /type=oci has no option "colour"/);
  fails(() => parseOutput('type=oci,dest=x,compression=brotli'), /unknown compression "brotli"/);
  fails(() => parseOutput('type=oci,dest=x,compression=gzip,compression-level=10'), /not a level of gzip \(0–9\)/);
  fails(() => parseOutput('type=oci,dest=x,compression=zstd,compression-level=0'), /not a level of zstd \(1–22\)/);
  fails(() => parseOutput('type=oci,dest=x,compression=uncompressed,compression-level=3'), /needs a compression/);
  fails(() => parseOutput('type=oci,dest=x,push=maybe'), /type=oci has no option "push"/);
  fails(() => parseOutput('type=image,push=maybe'), /push=maybe is not true or false/);
  fails(() => parseOutput('type=oci,dest=x,compression=zstd,oci-mediatypes=false'), /zstd layers have no docker media type/);
  fails(() => parseOutput('type=oci,dest=-,tar=false'), /cannot go to stdout/);
  fails(() => parseOutput('type=tar,dest=x,annotation.a=1'), /has no annotations/);
  fails(() => parseOutput('type=docker,dest=x,annotation.a=1'), /no place for annotations/);
  fails(() => parseOutput('type=image,annotation-layer.a=1'), /unknown annotation type "layer"/);
  fails(() => parseOutput('type=image,annotation-index[linux/amd64].a=1'), /cannot name a platform/);
  fails(() => parseOutput('type=image,annotationx=1'), /not an annotation option/);
  fails(() => parseOutput('type=image,nokey'), /"nokey" is not key=value/);
  fails(() => parseAnnotationFlag('novalue'), /not KEY=VALUE/);
  fails(() => parseAnnotationFlag('index[linux/amd64]:a=1'), /cannot name a platform/);
});

test('stdout: refused on a terminal, and only once', () => {
  const deps = { tags: [], registry: () => assert.fail('no registry') };
  fails(() => outputExporters([parseOutput('-')], { ...deps, stdout: { isTTY: true } as unknown as NodeJS.WritableStream }), /refusing to write the tar archive to a terminal/);
  fails(() => outputExporters([parseOutput('-'), parseOutput('type=oci,dest=-')], deps), /only one output can go to stdout/);
  const pipe = { isTTY: false, write: () => true } as unknown as NodeJS.WritableStream;
  assert.deepEqual(
    outputExporters([parseOutput('type=oci,dest=-'), parseOutput('d'), parseOutput('type=docker,dest=x.tar')], { ...deps, stdout: pipe }).map((e) => e.type),
    ['oci', 'local', 'docker'],
  );
  fails(() => outputExporters([parseOutput('type=image,push=true')], deps), /nothing to push to/);
});
