/**
 * ADD <url>: over http, and over https with a certificate only NODE_EXTRA_CA_CERTS trusts,
 * through the bin/kiln command (which hands that variable to kiln as KILN_EXTRA_CA_CERTS
 * so node does not parse the bundle at start-up).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isRoot, repoRoot, runCommand, runKiln, tempDir, workspace, type Workspace } from '../helpers.js';

const skip = !isRoot() ? 'needs root' : !existsSync('/usr/bin/openssl') ? 'openssl not installed' : false;
const served = 'served over the network\n';
/** What /changing serves: a test changes it between builds. */
let changing = 'version 1\n';
const handler: http.RequestListener = (req, res) => {
  if (req.url === '/changing') {
    res.writeHead(200);
    res.end(changing);
  } else if (req.url === '/moved') {
    res.writeHead(302, { location: '/file.txt' });
    res.end();
  } else if (req.url === '/file.txt') {
    res.writeHead(200, { 'last-modified': 'Tue, 01 Aug 2023 10:00:00 GMT' });
    res.end(served);
  } else {
    res.writeHead(404);
    res.end();
  }
};

describe('ADD <url>', { skip }, () => {
  let ws: Workspace;
  let plain: http.Server;
  let secure: https.Server;
  let cert: string;
  let cleanupCert: () => Promise<void>;
  const port = (s: http.Server | https.Server) => (s.address() as AddressInfo).port;

  before(async () => {
    ws = await workspace();
    const t = await tempDir('kiln-cert-');
    cleanupCert = t.cleanup;
    cert = path.join(t.dir, 'cert.pem');
    const key = path.join(t.dir, 'key.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    assert.equal(r.status, 0, r.stderr.toString());
    plain = http.createServer(handler).listen(0, '127.0.0.1');
    secure = https.createServer({ key: await fs.readFile(key), cert: await fs.readFile(cert) }, handler).listen(0, '127.0.0.1');
    await Promise.all([plain, secure].map((s) => new Promise((ok) => (s.listening ? ok(undefined) : s.once('listening', ok)))));
  });
  after(async () => {
    plain.close();
    secure.close();
    await cleanupCert();
    await ws.cleanup();
  });

  it('fetches over http (following a redirect) and keeps Last-Modified as the mtime', async () => {
    const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nADD http://127.0.0.1:${port(plain)}/moved /got.txt\n` });
    const r = await runKiln(['build', '-t', 'addurl:1', dir], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const run = await runKiln(['run', 'addurl:1', 'sh', '-c', 'cat /got.txt; date -u -r /got.txt +%Y-%m-%d'], { root: ws.root });
    assert.equal(run.stdout, `${served}2023-08-01\n`);
    const missing = await ws.context({ Dockerfile: `FROM busybox:latest\nADD http://127.0.0.1:${port(plain)}/nope /x\n` });
    const m = await runKiln(['build', missing], { root: ws.root });
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /ADD could not fetch .*HTTP 404/);
  });

  it('keys the step on the content fetched: the same content hits the cache, new content misses', async () => {
    const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nADD http://127.0.0.1:${port(plain)}/changing /c.txt\n` });
    const build = async () => {
      const r = await runKiln(['build', '--progress', 'json', '-t', 'addchange:1', dir], { root: ws.root });
      assert.equal(r.code, 0, r.stderr);
      const evs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; name: string });
      const add = evs.filter((e) => / ADD /.test(e.name)).map((e) => e.type);
      const got = await runKiln(['run', 'addchange:1', 'cat', '/c.txt'], { root: ws.root });
      return { add, content: got.stdout };
    };
    changing = 'version 1\n';
    const first = await build();
    assert.ok(first.add.includes('done'), JSON.stringify(first));
    assert.equal(first.content, 'version 1\n');
    const same = await build();
    assert.deepEqual(same.add, ['cached']);
    changing = 'version 2\n';
    const changed = await build();
    assert.ok(changed.add.includes('done'), JSON.stringify(changed));
    assert.equal(changed.content, 'version 2\n');
  });

  it('with --checksum keys on the checksum (a cached step fetches nothing) and refuses other content', async () => {
    changing = 'pinned\n';
    const sum = `sha256:${createHash('sha256').update(changing).digest('hex')}`;
    const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nADD --checksum=${sum} http://127.0.0.1:${port(plain)}/changing /p.txt\n` });
    const first = await runKiln(['build', '-t', 'addsum:1', dir], { root: ws.root });
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await runKiln(['run', 'addsum:1', 'cat', '/p.txt'], { root: ws.root })).stdout, 'pinned\n');
    // the server now serves other content: the step stays cached, as the checksum names its content
    changing = 'tampered\n';
    const cached = await runKiln(['build', '--progress', 'json', dir], { root: ws.root });
    assert.equal(cached.code, 0, cached.stderr);
    assert.match(cached.stderr, /"type":"cached"[^\n]*ADD http/);
    // run again, the fetched content does not match: a clear error at the ADD line
    const fresh = await runKiln(['build', '--no-cache', dir], { root: ws.root });
    assert.notEqual(fresh.code, 0);
    assert.match(fresh.stderr, /Dockerfile:2:1: ADD http:\S+\/changing: digest mismatch sha256:[0-9a-f]{64}: sha256:/);
    assert.match(fresh.stderr, /hint: the file changed, or --checksum is wrong/);
  });

  it('trusts NODE_EXTRA_CA_CERTS for https through the kiln command', async () => {
    const dir = await ws.context({ Dockerfile: `FROM busybox:latest\nADD https://127.0.0.1:${port(secure)}/file.txt /tls.txt\n` });
    const kiln = path.join(repoRoot, 'bin', 'kiln');
    const env = { NODE_EXTRA_CA_CERTS: cert, KILN_EXTRA_CA_CERTS: '' };
    const ok = await runCommand(kiln, ['--root', ws.root, 'build', '-t', 'addtls:1', dir], { env });
    assert.equal(ok.code, 0, ok.stderr);
    const run = await runKiln(['run', 'addtls:1', 'cat', '/tls.txt'], { root: ws.root });
    assert.equal(run.stdout, served);
    // without the extra CA the certificate is not trusted: a clear error, not a stack trace
    const untrusted = await runCommand(kiln, ['--root', ws.root, 'build', '--no-cache', dir], { env: { NODE_EXTRA_CA_CERTS: '', KILN_EXTRA_CA_CERTS: '' } });
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /ADD could not fetch https:.*certificate/);
    assert.doesNotMatch(untrusted.stderr, /\n\s+at /);
  });
});
