/** Port of BuildKit's frontend/dockerfile/dockerfile_runnetwork_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import net from 'node:net';
import { port, useHarness } from './harness.js';

const h = useHarness();

/** A TCP server on 127.0.0.1 that answers every connection with "foo" (BuildKit's echoserver). */
async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => s.end('foo\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: p } = server.address() as net.AddressInfo;
  return { port: p, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const HOST = ['--allow', 'network.host'];

port('testRunDefaultNetwork', async () => {
  // the default network is a namespace of its own with an interface (docker 20.10: its bridge)
  await h.differential({ dockerfile: 'FROM busybox\nRUN ip link show eth0\n' });
});

port('testRunNoNetwork', async () => {
  // only the loopback interface in a --network=none step, eth0 in a default one; kiln only:
  // docker 20.10's built-in frontend predates RUN --network ("Unknown flag: network")
  await h.kiln({ dockerfile: 'FROM busybox\nRUN --network=none ! ip link show eth0 && [ "$(ip -o link show | wc -l)" = "1" ]\nRUN ip link show eth0\n' });
});

port('testRunHostNetwork', async () => {
  const s = await echoServer();
  try {
    const dockerfile = `FROM busybox\nRUN --network=host nc 127.0.0.1 ${s.port} | grep foo\nRUN ! nc 127.0.0.1 ${s.port} | grep foo\n`;
    // network.host granted: the host's loopback from the host network only
    await h.kiln({ dockerfile, kilnArgs: HOST });
    // denied (no --allow): the entitlement error
    const denied = await h.kilnFails({ dockerfile });
    assert.match(denied.stderr, /entitlement network\.host is not allowed/);
  } finally {
    await s.close();
  }
});

port('testRunGlobalNetwork', async () => {
  const s = await echoServer();
  try {
    // force-network-mode=host is build --network host; busybox's nc has no -z here, so the
    // none step checks that a connection gets no answer
    const dockerfile = `FROM busybox\nRUN nc 127.0.0.1 ${s.port} | grep foo\nRUN --network=none ! nc 127.0.0.1 ${s.port} </dev/null\n`;
    await h.kiln({ dockerfile, kilnArgs: ['--network', 'host', ...HOST] });
    const denied = await h.kilnFails({ dockerfile, kilnArgs: ['--network', 'host'] });
    assert.match(denied.stderr, /entitlement network\.host is not allowed/);
  } finally {
    await s.close();
  }
});
