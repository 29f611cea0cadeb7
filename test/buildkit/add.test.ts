/** Port of BuildKit's frontend/dockerfile/dockerfile_add_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
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

port('testAddChecksum', async (t) => {
  const content = 'content1';
  const srv = await testServer(t, { '/foo': { content, etag: '"e1"' } });
  const sum = `sha256:${createHash('sha256').update(content).digest('hex')}`;
  // Valid, DigestFromEnv
  await h.kiln({ dockerfile: `FROM scratch\nADD --checksum=${sum} ${srv.url}/foo /tmp/foo\n` });
  const img = await h.kiln({ dockerfile: `FROM scratch\nENV DIGEST=${sum}\nENV LINK=${srv.url}/foo\nADD --checksum=\${DIGEST} \${LINK} /tmp/foo\n` });
  assert.equal(readImageFile(img, 'tmp/foo'), content);
  // DigestMismatch
  const empty = `sha256:${createHash('sha256').update('').digest('hex')}`;
  let r = await h.kilnFails({ dockerfile: `FROM scratch\nADD --checksum=${empty} ${srv.url}/foo /tmp/foo\n` });
  assert.match(r.stderr, /digest mismatch/);
  // DigestWithKnownButUnsupportedAlgoName, DigestWithUnknownAlgoName
  r = await h.kilnFails({ dockerfile: `FROM scratch\nADD --checksum=md5:7e55db001d319a94b0b713529a756623 ${srv.url}/foo /tmp/foo\n` });
  assert.match(r.stderr, /unsupported digest algorithm/);
  r = await h.kilnFails({ dockerfile: `FROM scratch\nADD --checksum=unknown:${sum.slice(7)} ${srv.url}/foo /tmp/foo\n` });
  assert.match(r.stderr, /unsupported digest algorithm/);
  // DigestWithoutAlgoName
  r = await h.kilnFails({ dockerfile: `FROM scratch\nADD --checksum=${sum.slice(7)} ${srv.url}/foo /tmp/foo\n` });
  assert.match(r.stderr, /invalid checksum digest format/);
  // NonHTTPSource
  r = await h.kilnFails({
    dockerfile: 'FROM scratch\nADD --checksum=sha256:8b0ca6a6fc1d7ab0e2cd14e4edb7ef5fef4a4fcf1fa3b6c23dd9ae4b3d8a5d7d foo /tmp/foo\n',
    files: { foo: 'local file' },
  });
  assert.match(r.stderr, /checksum requires HTTP\(S\) or Git sources/);
});

port('testDockerfileADDFromURL', async (t) => {
  // a day ago, at a whole second (Last-Modified has no fractions)
  const modTime = new Date(Math.floor(Date.now() / 1000 - 24 * 3600) * 1000);
  const srv = await testServer(t, {
    '/foo': { content: 'content1', etag: `"${randomUUID()}"` },
    '/': { content: 'content2', etag: `"${randomUUID()}"`, lastModified: modTime.toUTCString() },
  });
  let img = await h.differential({ dockerfile: `FROM scratch\nADD ${srv.url}/foo /dest/\n` });
  assert.equal(readImageFile(img, 'dest/foo'), 'content1');
  assert.equal(resolveEntry(img, 'dest/foo').mode & 0o7777, 0o600);
  // what BuildKit checks with a HEAD request (If-None-Match, then the ETag), kiln asks with a
  // conditional GET: the unchanged URL gets a 304, and no body
  const kilnRequests = () => srv.requests('/foo').filter((q) => /^kiln\//.test(q.userAgent));
  const before = kilnRequests().length;
  await h.kiln({ dockerfile: `FROM scratch\nADD ${srv.url}/foo /dest/\n` });
  const reqs = kilnRequests();
  assert.equal(reqs.length, before + 1);
  assert.deepEqual([reqs[0].method, reqs[0].ifNoneMatch], ['GET', undefined]);
  const last = reqs[reqs.length - 1];
  assert.deepEqual([last.method, last.ifNoneMatch, last.status], ['GET', srv.routes['/foo'].etag, 304]);

  // the default properties: a URL without a file name, Last-Modified as the time
  img = await h.differential({ dockerfile: `FROM scratch\nADD ${srv.url}/ /dest/\n` });
  assert.equal(readImageFile(img, 'dest/__unnamed__'), 'content2');
  // the tree has no times: read it in a busybox stage
  const r = await h.kilnBuild({ dockerfile: `FROM busybox\nADD ${srv.url}/ /dest/\n` });
  assert.equal(r.code, 0, r.stderr);
  const mtime = await h.run(r.tag, ['stat', '-c', '%Y', '/dest/__unnamed__']);
  assert.equal(Number(mtime.stdout.trim()) * 1000, modTime.getTime());
});

port('testAddURLChmod', async (t) => {
  const srv = await testServer(t, { '/foo': { content: 'content1', etag: `"${randomUUID()}"` } });
  const u = `${srv.url}/foo`;
  // ARG in --chmod is not expanded by docker 20.10's frontend: kiln only
  const img = await h.kiln({
    dockerfile: [
      'FROM busybox AS build',
      `ADD --chmod=644 ${u} /tmp/foo1`,
      `ADD --chmod=755 ${u} /tmp/foo2`,
      `ADD --chmod=0413 ${u} /tmp/foo3`,
      'ARG mode',
      `ADD --chmod=\${mode} ${u} /tmp/foo4`,
      'RUN stat -c "%04a" /tmp/foo1 >> /dest && \\',
      '\tstat -c "%04a" /tmp/foo2 >> /dest && \\',
      '\tstat -c "%04a" /tmp/foo3 >> /dest && \\',
      '\tstat -c "%04a" /tmp/foo4 >> /dest',
      'FROM scratch',
      'COPY --from=build /dest /dest',
      '',
    ].join('\n'),
    buildArgs: { mode: '400' },
  });
  assert.equal(readImageFile(img, 'dest'), '0644\n0755\n0413\n0400\n');
});

interface Route {
  content: string;
  etag?: string;
  lastModified?: string;
}

interface Request {
  method: string;
  userAgent: string;
  ifNoneMatch?: string;
  status: number;
}

/** BuildKit's httpserver.NewTestServer: fixed responses with ETag/Last-Modified (conditional GETs answered), each request logged; closed after the test. */
async function testServer(t: TestContext, routes: Record<string, Route>): Promise<{ url: string; routes: Record<string, Route>; requests(p: string): Request[] }> {
  const log = new Map<string, Request[]>();
  const server = http.createServer((req, res) => {
    const route = routes[req.url ?? ''];
    const entry: Request = { method: req.method ?? '', userAgent: req.headers['user-agent'] ?? '', ifNoneMatch: req.headers['if-none-match'], status: 404 };
    log.set(req.url ?? '', [...(log.get(req.url ?? '') ?? []), entry]);
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    const headers: Record<string, string> = {};
    if (route.etag) headers.etag = route.etag;
    if (route.lastModified) headers['last-modified'] = route.lastModified;
    entry.status = route.etag !== undefined && entry.ifNoneMatch === route.etag ? 304 : 200;
    res.writeHead(entry.status, headers).end(entry.status === 200 && req.method !== 'HEAD' ? route.content : undefined);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, routes, requests: (p) => log.get(p) ?? [] };
}
