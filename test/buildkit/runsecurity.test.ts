/** Port of BuildKit's frontend/dockerfile/dockerfile_runsecurity_test.go (see test/buildkit/README.md). */
import { port, useHarness } from './harness.js';

const h = useHarness();

// docker's default capability set, as the bounding set of a RUN
const defaultCaps = '"CapBnd:\t00000000a80425fb"';

port('testRunSecurityDefault', async () => {
  await h.differential({ dockerfile: `FROM busybox\nRUN [ "$(cat /proc/self/status | grep CapBnd)" == ${defaultCaps} ]\n` });
});

port('testRunSecuritySandbox', async () => {
  // RUN --security is a labs flag in docker 20.10's frontend: assertion only
  await h.kiln({ dockerfile: `FROM busybox\nRUN --security=sandbox [ "$(cat /proc/self/status | grep CapBnd)" == ${defaultCaps} ]\n` });
});
