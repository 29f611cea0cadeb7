/**
 * ADD <url> revalidation: what a URL gave is kept under the kiln root with its ETag and
 * Last-Modified, so a later build sends a conditional GET; a 304 downloads nothing and keeps
 * the step cached, a changed URL invalidates it. A real node http server on 127.0.0.1 logs
 * every request it answers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { kilnPaths } from '../../src/paths.js';
import { isRoot, runKiln, workspace, type Workspace } from '../helpers.js';

const skip = !isRoot() ? 'needs root' : false;

interface Logged {
  url: string;
  method: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  userAgent?: string;
  status: number;
  /** Whether the body was sent whole. */
  bodySent: boolean;
}

/** What each path serves; a test changes them between builds. */
const resources: Record<string, { body: string; etag?: string; lastModified?: string; ignoreConditions?: boolean }> = {};
const log: Logged[] = [];

const handler: http.RequestListener = (req, res) => {
  const r = resources[req.url ?? ''];
  const entry: Logged = {
    url: req.url ?? '',
    method: req.method ?? '',
    ifNoneMatch: req.headers['if-none-match'],
    ifModifiedSince: req.headers['if-modified-since'],
    userAgent: req.headers['user-agent'],
    status: 404,
    bodySent: false,
  };
  log.push(entry);
  if (!r) {
    res.writeHead(404);
    res.end();
    return;
  }
  const headers: Record<string, string> = {};
  if (r.etag) headers.etag = r.etag;
  if (r.lastModified) headers['last-modified'] = r.lastModified;
  const notModified = !r.ignoreConditions && ((r.etag !== undefined && entry.ifNoneMatch === r.etag) || (r.etag === undefined && r.lastModified !== undefined && entry.ifModifiedSince === r.lastModified));
  if (notModified) {
    entry.status = 304;
    res.writeHead(304, headers);
    res.end();
    return;
  }
  entry.status = 200;
  res.writeHead(200, headers);
  res.end(r.body, () => (entry.bodySent = true));
};

describe('ADD <url> revalidation', { skip }, () => {
  let ws: Workspace;
  let server: http.Server;
  let base: string;

  before(async () => {
    ws = await workspace();
    server = http.createServer(handler).listen(0, '127.0.0.1');
    await new Promise((ok) => server.once('listening', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await ws.cleanup();
  });

  const build = async (dockerfile: string, tag: string, extra: string[] = []) => {
    const dir = await ws.context({ Dockerfile: dockerfile });
    const r = await runKiln(['build', '--progress', 'json', '-t', tag, ...extra, dir], { root: ws.root });
    assert.equal(r.code, 0, r.stderr);
    const evs = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; name: string });
    return evs.filter((e) => / ADD /.test(e.name)).map((e) => e.type);
  };
  const cat = async (tag: string, script: string) => (await runKiln(['run', tag, 'sh', '-c', script], { root: ws.root })).stdout;
  const requestsFor = (url: string) => log.filter((l) => l.url === url);

  it('with an ETag: an unchanged URL gets a 304 and downloads nothing; a changed one invalidates the step', async () => {
    resources['/etag.txt'] = { body: 'content one\n', etag: '"v1"' };
    const df = `FROM busybox:latest\nADD ${base}/etag.txt /e.txt\n`;
    assert.ok((await build(df, 'urlc:etag')).includes('done'));
    let reqs = requestsFor('/etag.txt');
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].ifNoneMatch, undefined);
    assert.match(reqs[0].userAgent ?? '', /^kiln\//);
    assert.equal(await cat('urlc:etag', 'cat /e.txt; stat -c %a /e.txt'), 'content one\n600\n');

    assert.deepEqual(await build(df, 'urlc:etag'), ['cached']);
    reqs = requestsFor('/etag.txt');
    assert.equal(reqs.length, 2);
    assert.deepEqual([reqs[1].method, reqs[1].ifNoneMatch, reqs[1].status], ['GET', '"v1"', 304]);

    // without the build cache the step runs again, from the content the root kept (a 304 again)
    assert.ok((await build(df, 'urlc:etag', ['--no-cache'])).includes('done'));
    assert.equal(requestsFor('/etag.txt')[2].status, 304);
    assert.equal(await cat('urlc:etag', 'cat /e.txt'), 'content one\n');

    resources['/etag.txt'] = { body: 'content two\n', etag: '"v2"' };
    assert.ok((await build(df, 'urlc:etag')).includes('done'));
    reqs = requestsFor('/etag.txt');
    assert.deepEqual([reqs[3].ifNoneMatch, reqs[3].status, reqs[3].bodySent], ['"v1"', 200, true]);
    assert.equal(await cat('urlc:etag', 'cat /e.txt'), 'content two\n');
  });

  it('with only Last-Modified: revalidated with If-Modified-Since; the mtime is Last-Modified', async () => {
    const lm = 'Wed, 02 Aug 2023 11:12:13 GMT';
    resources['/dated.txt'] = { body: 'dated\n', lastModified: lm };
    const df = `FROM busybox:latest\nADD ${base}/dated.txt /d.txt\n`;
    await build(df, 'urlc:lm');
    assert.deepEqual(await build(df, 'urlc:lm'), ['cached']);
    const reqs = requestsFor('/dated.txt');
    assert.deepEqual([reqs[1].ifModifiedSince, reqs[1].status], [lm, 304]);
    assert.equal(await cat('urlc:lm', 'date -u -r /d.txt "+%Y-%m-%d %H:%M:%S"; stat -c %a /d.txt'), '2023-08-02 11:12:13\n600\n');
    // a newer Last-Modified is a change (the time is part of what the layer gets)
    resources['/dated.txt'] = { body: 'dated\n', lastModified: 'Thu, 03 Aug 2023 00:00:00 GMT' };
    assert.ok((await build(df, 'urlc:lm')).includes('done'));
    assert.equal(await cat('urlc:lm', 'date -u -r /d.txt +%Y-%m-%d'), '2023-08-03\n');
  });

  it('a server that ignores the condition but sends the same ETag keeps the step cached', async () => {
    resources['/stubborn.bin'] = { body: 'x'.repeat(4 << 20), etag: '"same"', ignoreConditions: true };
    const df = `FROM busybox:latest\nADD ${base}/stubborn.bin /s.bin\n`;
    await build(df, 'urlc:stubborn');
    assert.deepEqual(await build(df, 'urlc:stubborn'), ['cached']);
    assert.equal(requestsFor('/stubborn.bin')[1].ifNoneMatch, '"same"');
  });

  it('names a URL without a file name __unnamed__, and keeps what it fetched under the root', async () => {
    resources['/'] = { body: 'index\n', etag: '"i"' };
    await build(`FROM busybox:latest\nADD ${base}/ /dest/\n`, 'urlc:unnamed');
    assert.equal(await cat('urlc:unnamed', 'ls /dest; cat /dest/__unnamed__'), '__unnamed__\nindex\n');
    const dir = kilnPaths(ws.root).cacheHttp;
    const records = await fs.readdir(path.join(dir, 'urls'));
    assert.ok(records.length >= 4, records.join(' '));
    // changed content replaced the old: only what some URL still names is kept
    const contents = await fs.readdir(path.join(dir, 'content'));
    assert.equal(contents.length, records.length);
  });

  it('counts what it keeps in kiln du, and kiln prune --all removes it (the next build downloads again)', async () => {
    const du = await runKiln(['du'], { root: ws.root });
    assert.equal(du.code, 0, du.stderr);
    assert.match(du.stdout, /^source\s+1\s+\S+/m);
    const prune = await runKiln(['prune', '--all'], { root: ws.root });
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, /1 ADD source cache/);
    assert.equal(await fs.stat(kilnPaths(ws.root).cacheHttp).catch(() => undefined), undefined);
    await build(`FROM busybox:latest\nADD ${base}/etag.txt /e.txt\n`, 'urlc:pruned');
    const last = requestsFor('/etag.txt').pop()!;
    assert.deepEqual([last.ifNoneMatch, last.status], [undefined, 200]);
  });
});
