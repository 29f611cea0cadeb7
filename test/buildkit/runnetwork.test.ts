/** Port of BuildKit's frontend/dockerfile/dockerfile_runnetwork_test.go (see test/buildkit/README.md). */
import net from 'node:net';
import { port, useHarness } from './harness.js';

const h = useHarness();

/** A TCP server on 127.0.0.1 that answers every connection with "foo". */
async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => s.end('foo\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: p } = server.address() as net.AddressInfo;
  return { port: p, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

port('testRunNoNetwork', async () => {
  // only the loopback interface in a --network=none step; kiln only: docker 20.10's built-in
  // frontend predates RUN --network ("Unknown flag: network")
  await h.kiln({ dockerfile: 'FROM busybox\nRUN --network=none ! ip link show eth0 && [ "$(ip -o link show | wc -l)" = "1" ]\n' });
});

port('testRunHostNetwork', async () => {
  const s = await echoServer();
  try {
    // the Go test's second step (the default network cannot reach the host's loopback)
    // needs a sandboxed default network; kiln's default is the host's (see README)
    await h.kiln({ dockerfile: `FROM busybox\nRUN --network=host nc 127.0.0.1 ${s.port} | grep foo\n` });
  } finally {
    await s.close();
  }
});

port('testRunGlobalNetwork', async () => {
  const s = await echoServer();
  try {
    // force-network-mode=host is kiln's default: every RUN without --network uses the host's
    await h.kiln({ dockerfile: `FROM busybox\nRUN nc 127.0.0.1 ${s.port} | grep foo\nRUN --network=none ! nc -z 127.0.0.1 ${s.port}\n` });
  } finally {
    await s.close();
  }
});
