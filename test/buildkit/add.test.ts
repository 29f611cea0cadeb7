/** Port of BuildKit's frontend/dockerfile/dockerfile_add_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { hasEntry, makeTar, port, readImageFile, resolveEntry, useHarness } from './harness.js';

const h = useHarness();

port('testDockerfileAddArchive', async () => {
  const plain = await makeTar([{ name: 'foo', content: 'content0' }]);
  const gz = await makeTar([{ name: 'foo', content: 'content0' }], { gzip: true });
  let img = await h.differential({ dockerfile: 'FROM scratch\nADD t.tar /\n', files: { 't.tar': { content: plain, mode: 0o600 } } });
  assert.equal(readImageFile(img, 'foo'), 'content0');
  img = await h.differential({ dockerfile: 'FROM scratch\nADD t.tar.gz /\n', files: { 't.tar.gz': { content: gz, mode: 0o600 } } });
  assert.equal(readImageFile(img, 'foo'), 'content0');
  // COPY never unpacks
  img = await h.differential({ dockerfile: 'FROM scratch\nCOPY t.tar.gz /\n', files: { 't.tar.gz': { content: gz, mode: 0o600 } } });
  assert.ok(!hasEntry(img, 'foo'));
  assert.deepEqual(resolveEntry(img, 't.tar.gz').data, gz);
  // ADD --unpack=false (Dockerfile 1.17; not in docker 20.10) copies the archive as is
  img = await h.kiln({ dockerfile: 'FROM scratch\nADD --unpack=false t.tar.gz /\n', files: { 't.tar.gz': { content: gz, mode: 0o600 } } });
  assert.ok(!hasEntry(img, 'foo'));
  assert.deepEqual(resolveEntry(img, 't.tar.gz').data, gz);
});

port('testDockerfileAddArchiveWithImpliedParentDir', async () => {
  const gz = await makeTar([{ name: 'etc/dnf/', type: 'directory' }, { name: 'etc/dnf/dnf.conf', content: '' }], { gzip: true });
  const img = await h.differential({ dockerfile: 'FROM scratch\nADD t.tar.gz /\n', files: { 't.tar.gz': { content: gz, mode: 0o600 } } });
  assert.equal(readImageFile(img, 'etc/dnf/dnf.conf'), '');
  assert.equal(resolveEntry(img, 'etc').type, 'dir');
});

port('testDockerfileAddArchiveThroughAbsoluteSymlink', async () => {
  // a name of our own under /run: an extraction that escapes the root lands on this host's /run
  const top = `kiln-bkport-${process.pid}`;
  const hostPath = path.join('/run', top);
  const existed = existsSync(hostPath);
  const rootfs = await makeTar([
    { name: 'run/', type: 'directory' },
    { name: 'var/', type: 'directory' },
    { name: 'var/run', type: 'symlink', linkname: '/run', mode: 0o777 },
  ]);
  const payload = await makeTar([
    { name: `var/run/${top}/`, type: 'directory' },
    { name: `var/run/${top}/actions/`, type: 'directory' },
    { name: `var/run/${top}/actions/broad/`, type: 'directory' },
    { name: `var/run/${top}/actions/broad/.git/`, type: 'directory' },
    { name: `var/run/${top}/actions/broad/.git/HEAD`, content: '' },
    { name: `var/run/${top}/actions/broad/.git/HEAD.link`, type: 'link', linkname: `var/run/${top}/actions/broad/.git/HEAD` },
  ]);
  try {
    const img = await h.differential({
      dockerfile: 'FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n',
      files: { 'rootfs.tar': { content: rootfs, mode: 0o600 }, 'payload.tar': { content: payload, mode: 0o600 } },
    });
    const head = resolveEntry(img, `run/${top}/actions/broad/.git/HEAD`);
    assert.equal(head.type, 'file');
    assert.equal(resolveEntry(img, `run/${top}/actions/broad/.git/HEAD.link`).inode, head.inode, 'the hard link stays a hard link');
    assert.equal(resolveEntry(img, 'var/run').type, 'symlink');
  } finally {
    const escaped = !existed && existsSync(hostPath);
    if (escaped) await fs.rm(hostPath, { recursive: true, force: true });
    assert.ok(!escaped, `the archive was extracted onto the host (${hostPath})`);
  }
});

port('testDockerfileAddChownArchive', async () => {
  const t = await makeTar([{ name: 'foo', content: 'content0' }]);
  const img = await h.kiln({ dockerfile: 'FROM scratch\nADD --chown=100:200 t.tar /out/\n', files: { 't.tar': { content: t, mode: 0o600 } } });
  const foo = resolveEntry(img, 'out/foo');
  assert.equal(foo.data?.toString(), 'content0');
  assert.deepEqual([foo.uid, foo.gid], [100, 200], 'files unpacked by ADD --chown get the owner');
  const out = resolveEntry(img, 'out');
  assert.deepEqual([out.uid, out.gid], [100, 200], 'the destination ADD --chown creates gets the owner');
});

port('testDockerfileAddArchiveWildcard', async () => {
  const t = await makeTar([{ name: 'foo', content: 'content0' }]);
  const b = await makeTar([{ name: 'bar', content: 'content1' }]);
  const img = await h.differential({ dockerfile: 'FROM scratch\nADD *.tar /dest\n', files: { 't.tar': { content: t, mode: 0o600 }, 'b.tar': { content: b, mode: 0o600 } } });
  assert.equal(readImageFile(img, 'dest/foo'), 'content0');
  assert.equal(readImageFile(img, 'dest/bar'), 'content1');
});

port('testDockerfileAddChownExpand', async () => {
  await h.differential({
    dockerfile: [
      'FROM busybox',
      // upstream busybox names group 65534 nobody; the busybox-static base calls it nogroup
      `RUN sed -i 's/^nogroup:/nobody:/' /etc/group`,
      'ARG group',
      'ENV owner 1000',
      'ADD --chown=${owner}:${group} foo /',
      'RUN [ "$(stat -c "%u %G" /foo)" == "1000 nobody" ]',
      '',
    ].join('\n'),
    files: { foo: { content: 'foo-contents', mode: 0o600 } },
    buildArgs: { group: 'nobody' },
  });
});

port('testAddInvalidChmod', async () => {
  for (const mode of ['64a', '10000']) {
    const r = await h.kilnFails({ dockerfile: `FROM scratch\nADD --chmod=${mode} foo /\n`, files: { foo: 'foo-contents' } });
    assert.match(r.stderr, new RegExp(`invalid chmod parameter: '${mode}'. it should be octal string and between 0 and 07777`));
  }
});

port('testAddChecksum', async () => {
  // only the local-source case: the others fetch over HTTP
  const r = await h.kilnFails({
    dockerfile: 'FROM scratch\nADD --checksum=sha256:8b0ca6a6fc1d7ab0e2cd14e4edb7ef5fef4a4fcf1fa3b6c23dd9ae4b3d8a5d7d foo /tmp/foo\n',
    files: { foo: 'local file' },
  });
  assert.match(r.stderr, /checksum requires HTTP\(S\) or Git sources/);
});
