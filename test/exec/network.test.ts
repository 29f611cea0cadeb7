/**
 * The RUN sandbox's network, for real: builds and `kiln run` on busybox in runc, with pasta
 * and with slirp4netns. The default network reaches what the host reaches (the host's
 * resolver, the Debian mirror apt uses, a server on the host's own non-loopback address) and
 * never the host's loopback; --network=none has loopback only; the host network needs
 * --allow network.host. The helper dies with kiln, and what a kill -9 leaves is recovered.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { haveTool, isRoot, runKiln, workspace, type Workspace } from '../helpers.js';
import { leftovers, NOTHING, processesWith, startKiln, stopKiln, sleep } from '../faults/util.js';
import { hostNameservers, parsePortMapping, sandboxResolvConf } from '../../src/exec/network.js';
import { KilnError } from '../../src/errors.js';

const skip = !isRoot() ? 'needs root to run containers' : false;

/** A server answering "hello-<name>" on `host`. */
async function serve(host: string, name: string): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => res.end(`hello-${name}\n`));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host}:${port}/`, port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The host's first non-loopback IPv4 address (this machine's own). */
function hostAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('172.17.')) return a.address;
  return undefined;
}

/** The http mirror apt uses on this machine (its sources), or undefined. */
function aptMirror(): string | undefined {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    try {
      const m = /(?:URIs:\s*|^deb\s+)(http:\/\/[^\s]+)/m.exec(readFileSync(f, 'utf8'));
      if (m) return m[1].replace(/\/$/, '');
    } catch {
      // not there
    }
  }
  return undefined;
}

let ws: Workspace | undefined;
before(async () => {
  if (!skip) ws = await workspace();
});
after(async () => {
  await ws?.cleanup();
});

async function build(dockerfile: string, args: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const ctx = await ws!.context({ Dockerfile: dockerfile });
  const r = await runKiln(['build', '--no-cache', '--progress', 'plain', ...args, ctx], { root: ws!.root, env, timeoutMs: 120_000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

for (const helper of ['pasta', 'slirp4netns'] as const) {
  describe(`default RUN network through ${helper}`, { skip: skip || (!haveTool(helper) ? `${helper} is not installed` : false) }, () => {
    const env = { KILN_NETWORK_HELPER: helper };

    test('reaches the host resolver and a server on the host address, never the host loopback', async () => {
      const loop = await serve('127.0.0.1', 'loopback');
      const addr = hostAddress();
      const outside = addr ? await serve(addr, 'outside') : undefined;
      try {
        const lines = [
          'FROM busybox',
          // its own interface with a default route
          'RUN ip link show eth0 && ip route | grep -q "^default" && echo has-eth0',
          // the host's loopback service is not there (busybox wget -T crashes on a refused
          // connection: timeout(1) bounds it instead)
          `RUN if timeout 5 wget -q -O- http://127.0.0.1:${loop.port}/; then echo LEAK; exit 1; fi; echo loopback-unreachable`,
        ];
        if (outside) lines.push(`RUN timeout 10 wget -q -O- ${outside.url}`);
        const r = await build(`${lines.join('\n')}\n`, [], env);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /has-eth0/);
        assert.match(r.out, /loopback-unreachable/);
        assert.doesNotMatch(r.out, /hello-loopback/);
        if (outside) assert.match(r.out, /hello-outside/);
      } finally {
        await loop.close();
        await outside?.close();
      }
    });

    test('resolves names through the host resolver and downloads from the Debian mirror apt uses', { skip: aptMirror() ? false : 'no http apt mirror configured' }, async () => {
      const mirror = aptMirror()!;
      const host = new URL(mirror).hostname;
      const r = await build(`FROM busybox\nRUN cat /etc/resolv.conf && nslookup ${host} && timeout 30 wget -q -O- ${mirror}/dists/bookworm/Release | grep -m1 '^Origin:'\n`, [], env);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /Origin: Debian/);
      const hostServers = hostNameservers(readFileSync('/etc/resolv.conf', 'utf8')).reachable;
      for (const s of hostServers) assert.match(r.out, new RegExp(`nameserver ${s.replace(/\./g, '\\.')}`));
    });

    test('leaves no helper, namespace mount or bundle behind', async () => {
      const r = await build('FROM busybox\nRUN ip link show eth0\n', [], env);
      assert.equal(r.code, 0, r.out);
      assert.deepEqual(processesWith(`${ws!.root}/run/bundles`), []);
      const left = await leftovers(ws!.root);
      assert.deepEqual([left.mounts, left.bundles, left.containers], [[], [], []]);
    });
  });
}

describe('network modes and the network.host entitlement', { skip }, () => {
  test('--network=none has only loopback', async () => {
    const r = await build('FROM busybox\nRUN --network=none ! ip link show eth0 && [ "$(ip -o link show | wc -l)" = 1 ] && echo loopback-only\n');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /loopback-only/);
  });

  test('RUN --network=host needs --allow network.host, and then reaches the host loopback', async () => {
    const loop = await serve('127.0.0.1', 'loopback');
    try {
      const df = `FROM busybox\nRUN --network=host wget -q -O- ${loop.url}\n`;
      const denied = await build(df);
      assert.notEqual(denied.code, 0);
      assert.match(denied.out, /Dockerfile:2:5: RUN --network=host: entitlement network\.host is not allowed/);
      assert.match(denied.out, /--allow network\.host/);
      assert.doesNotMatch(denied.out, /at .*\.js:\d+/, 'no stack trace');
      const allowed = await build(df, ['--allow', 'network.host']);
      assert.equal(allowed.code, 0, allowed.out);
      assert.match(allowed.out, /hello-loopback/);
    } finally {
      await loop.close();
    }
  });

  test('build --network sets the network of steps without --network; host needs the entitlement', async () => {
    const loop = await serve('127.0.0.1', 'loopback');
    try {
      const df = `FROM busybox\nRUN wget -q -O- ${loop.url}\nRUN --network=none ! timeout 5 wget -q -O- ${loop.url}\n`;
      const denied = await build(df, ['--network', 'host']);
      assert.notEqual(denied.code, 0);
      assert.match(denied.out, /entitlement network\.host is not allowed/);
      const allowed = await build(df, ['--network', 'host', '--allow', 'network.host']);
      assert.equal(allowed.code, 0, allowed.out);
      assert.match(allowed.out, /hello-loopback/);
      const none = await build('FROM busybox\nRUN ! ip link show eth0 && echo none-for-all\n', ['--network', 'none']);
      assert.equal(none.code, 0, none.out);
      assert.match(none.out, /none-for-all/);
    } finally {
      await loop.close();
    }
  });

  test('an unknown KILN_NETWORK_HELPER is a clear error at the first sandboxed step', async () => {
    const r = await build('FROM busybox\nRUN true\n', [], { KILN_NETWORK_HELPER: 'vde' });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /KILN_NETWORK_HELPER=vde: unknown network helper/);
    assert.match(r.out, /hint: set KILN_NETWORK_HELPER to pasta or slirp4netns/);
    const none = await build('FROM busybox\nRUN --network=none true\n', [], { KILN_NETWORK_HELPER: 'vde' });
    assert.equal(none.code, 0, none.out);
  });

  test('bad --network and --allow values are clear errors', async () => {
    const ctx = await ws!.context({ Dockerfile: 'FROM busybox\n' });
    const net = await runKiln(['build', '--network', 'bridge', ctx], { root: ws!.root });
    assert.notEqual(net.code, 0);
    assert.match(net.stderr, /unknown --network "bridge"/);
    const allow = await runKiln(['build', '--allow', 'network.hots', ctx], { root: ws!.root });
    assert.notEqual(allow.code, 0);
    assert.match(allow.stderr, /unknown entitlement "network\.hots"/);
  });
});

describe('the network helper dies with kiln', { skip: skip || (!haveTool('pasta') ? 'pasta is not installed' : false) }, () => {
  for (const helper of ['pasta', 'slirp4netns'] as const) {
    test(`kill -9 during a RUN: ${helper} dies at once, the next command removes its namespace and bundle`, { skip: !haveTool(helper) ? `${helper} is not installed` : false }, async () => {
      const ctx = await ws!.context({ Dockerfile: 'FROM busybox\nRUN echo started-$((40+2)) && sleep 60\n' });
      const k = startKiln(ws!.root, ['build', '--no-cache', '--progress', 'plain', ctx], { env: { KILN_NETWORK_HELPER: helper } });
      try {
        await k.waitFor(/started-42/);
        const marker = `${ws!.root}/run/bundles`;
        const helpers = processesWith(marker).filter((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(helper));
        assert.equal(helpers.length, 1, `one ${helper} for the step`);
        k.child.kill('SIGKILL');
        await k.exited;
        for (let i = 0; i < 100 && processesWith(marker).some((p) => helpers.includes(p)); i++) await sleep(20);
        assert.deepEqual(processesWith(marker).filter((p) => helpers.includes(p)), [], `${helper} died with kiln`);
        // the namespace is still mounted in the dead kiln's bundle: the next command takes it away
        const r = await runKiln(['du'], { root: ws!.root });
        assert.equal(r.code, 0, r.stderr);
        const left = await leftovers(ws!.root);
        assert.deepEqual({ ...left, procs: [] }, NOTHING);
      } finally {
        await stopKiln(k);
      }
    });
  }

  test('SIGTERM during a RUN leaves no helper and no namespace', async () => {
    const ctx = await ws!.context({ Dockerfile: 'FROM busybox\nRUN echo started-$((40+2)) && sleep 60\n' });
    const k = startKiln(ws!.root, ['build', '--no-cache', '--progress', 'plain', ctx]);
    try {
      await k.waitFor(/started-42/);
      k.child.kill('SIGTERM');
      await k.exited;
      assert.deepEqual(processesWith(`${ws!.root}/run/bundles`), []);
      const left = await leftovers(ws!.root);
      assert.deepEqual([left.mounts, left.bundles, left.containers], [[], [], []]);
    } finally {
      await stopKiln(k);
    }
  });
});

describe('kiln run networks', { skip }, () => {
  let image = '';
  before(async () => {
    if (skip) return;
    const ctx = await ws!.context({ Dockerfile: 'FROM busybox\nRUN mkdir /www && echo hello-published > /www/index.html\n' });
    const r = await runKiln(['build', '-t', 'net-run:1', ctx], { root: ws!.root });
    assert.equal(r.code, 0, r.stderr);
    image = 'net-run:1';
  });

  test('the default network is isolated from the host loopback; --network host is not; none has no eth0', async () => {
    const loop = await serve('127.0.0.1', 'loopback');
    try {
      const sandboxed = await runKiln(['run', image, 'sh', '-c', `ip link show eth0 >/dev/null && ! timeout 5 wget -q -O- ${loop.url} && echo isolated`], { root: ws!.root });
      assert.equal(sandboxed.code, 0, sandboxed.stderr);
      assert.match(sandboxed.stdout, /isolated/);
      const host = await runKiln(['run', '--network', 'host', image, 'wget', '-q', '-O-', loop.url], { root: ws!.root });
      assert.equal(host.code, 0, host.stderr);
      assert.match(host.stdout, /hello-loopback/);
      const none = await runKiln(['run', '--network', 'none', image, 'sh', '-c', '! ip link show eth0 2>/dev/null && echo none'], { root: ws!.root });
      assert.equal(none.code, 0, none.stderr);
      assert.match(none.stdout, /none/);
    } finally {
      await loop.close();
    }
  });

  for (const helper of ['pasta', 'slirp4netns'] as const) {
  test(`-p HOSTPORT:CONTAINERPORT forwards a host port to the container (${helper})`, { skip: !haveTool(helper) ? `${helper} is not installed` : false }, async () => {
    // a free port of the host, given back just before kiln binds it
    const probe = await serve('127.0.0.1', 'probe');
    const port = probe.port;
    await probe.close();
    const probe2 = await serve('127.0.0.1', 'probe');
    const port2 = probe2.port;
    await probe2.close();
    const k = startKiln(ws!.root, ['run', '-p', `${port}:80`, '-p', `127.0.0.1:${port2}:8081`, image, 'sh', '-c', 'echo serving; httpd -p 8081 -h /www; exec httpd -f -p 80 -h /www'], {
      env: { KILN_NETWORK_HELPER: helper },
    });
    try {
      await k.waitFor(/serving/);
      const get = async (url: string): Promise<string> => {
        let body = '';
        for (let i = 0; i < 100 && !body; i++) {
          body = await fetch(url).then((r) => r.text(), () => '');
          if (!body) await sleep(50);
        }
        return body;
      };
      assert.equal(await get(`http://127.0.0.1:${port}/`), 'hello-published\n');
      assert.equal(await get(`http://127.0.0.1:${port2}/`), 'hello-published\n', 'the mapping bound to 127.0.0.1');
      const addr = hostAddress();
      if (addr) assert.equal(await fetch(`http://${addr}:${port2}/`).then((r) => r.text(), () => 'refused'), 'refused', 'only on 127.0.0.1');
      k.child.kill('SIGTERM');
      await k.exited;
      assert.deepEqual(processesWith(`${ws!.root}/run/bundles`), []);
    } finally {
      await stopKiln(k);
    }
  });
  }

  test('-p with --network host or none is refused clearly', async () => {
    const r = await runKiln(['run', '-p', '8080:80', '--network', 'host', image, 'true'], { root: ws!.root });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot publish ports \(-p\) with --network host/);
    const bad = await runKiln(['run', '-p', '80:99999', image, 'true'], { root: ws!.root });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid port mapping "80:99999"/);
  });
});

test('resolv.conf of the sandbox: the host resolvers, loopback ones replaced by the forwarder', () => {
  assert.equal(sandboxResolvConf('search example.org\nnameserver 10.1.1.1\nnameserver 127.0.0.53\n', '169.254.1.1'), 'search example.org\nnameserver 10.1.1.1\n');
  assert.equal(sandboxResolvConf('nameserver 127.0.0.53\noptions edns0\n', '169.254.1.1'), 'options edns0\nnameserver 169.254.1.1\n');
  assert.equal(sandboxResolvConf('', '10.0.2.3'), 'nameserver 10.0.2.3\n');
  assert.deepEqual(hostNameservers('nameserver ::1\nnameserver 192.0.2.53\n'), { reachable: ['192.0.2.53'], loopback: ['::1'], rest: [] });
});

test('port mappings as docker writes them', () => {
  assert.deepEqual(parsePortMapping('8080:80'), { host: 8080, container: 80, protocol: 'tcp' });
  assert.deepEqual(parsePortMapping('53:53/udp'), { host: 53, container: 53, protocol: 'udp' });
  assert.deepEqual(parsePortMapping('9000'), { host: 9000, container: 9000, protocol: 'tcp' });
  assert.deepEqual(parsePortMapping('127.0.0.1:8080:80'), { host: 8080, container: 80, protocol: 'tcp', address: '127.0.0.1' });
  for (const bad of ['0:80', 'a:b', '127.0.0.1:80', '300.0.0.1:80:80', '80:80/sctp']) assert.throws(() => parsePortMapping(bad), (e: unknown) => e instanceof KilnError && /invalid port mapping/.test(e.message));
});
