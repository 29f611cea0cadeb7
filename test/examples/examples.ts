/**
 * Shared parts of the example tests (test/examples/*.test.ts): the Debian bases from
 * scripts/make-base-image.sh (made once per machine and archive state, then cached: see the
 * script), copies of examples/ to build, and reading kiln's progress events.
 */
import { after, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { haveTool, isRoot, repoRoot, runCommand, runKiln, tempDir, type CliResult } from '../helpers.js';
import { dockerOracle, kilnImageTree, type DockerOracle } from '../oracle/docker.js';
import { compareImages, type CompareOptions } from '../buildkit/harness.js';
import { kilnStepCount } from '../../scripts/bench-cache.js';

export { kilnStepCount };

/** Why the example tests cannot run here, or false. */
export const skipExamples: string | false = !isRoot() ? 'RUN, overlayfs and mmdebstrap need root' : !haveTool('mmdebstrap') ? 'mmdebstrap is not installed (scripts/setup-host.sh)' : false;

/** Imports a Debian base (debian:bookworm, node:18-bookworm, node:18-bookworm-slim) into a kiln root. */
export async function importBase(root: string, name: string): Promise<void> {
  const r = await runCommand('bash', [path.join(repoRoot, 'scripts', 'make-base-image.sh'), name, '--root', root], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`make-base-image.sh ${name} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
}

/** A private copy of examples/NAME (tests edit it), removed by cleanup. */
export async function copyExample(name: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const t = await tempDir(`kiln-example-${name}-`);
  await fs.cp(path.join(repoRoot, 'examples', name), t.dir, { recursive: true });
  return t;
}

/** The steps a kiln build ran, by name, from its `--progress json` events. */
export function ranSteps(jsonLines: string): string[] {
  const out: string[] = [];
  for (const line of jsonLines.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const ev = JSON.parse(line) as { type?: string; name?: string };
      if (ev.type === 'done' && ev.name && /^\[(?:\S+ )?\d+\/\d+\]\s/.test(ev.name)) out.push(ev.name);
    } catch {
      // not an event
    }
  }
  return out;
}

/** One example's suite: a kiln root with its bases, a private copy of the example, the docker oracle. */
export interface ExampleSuite {
  /** The kiln root (set once the suite's before hook ran). */
  readonly root: string;
  /** The copy of examples/NAME the tests build and edit. */
  readonly dir: string;
  /** `kiln build --progress json -t TAG [extra] DIR`; fails the test unless it succeeds. */
  build(tag: string, extra?: string[]): Promise<CliResult>;
  /**
   * Builds the example with docker 20.10's BuildKit on the same bases (kiln save | docker load)
   * and compares its image with kiln's image `kilnTag`; undefined (the test skipped) when docker
   * is not there.
   */
  compareWithDocker(t: TestContext, kilnTag: string, compare: CompareOptions): Promise<{ oracle: DockerOracle; tag: string } | undefined>;
}

/** Registers the before/after hooks of an example's suite (call inside describe). */
export function useExample(name: string, bases: string[]): ExampleSuite {
  const cleanups: Array<() => Promise<void>> = [];
  let oracle: DockerOracle | undefined;
  const suite = {
    root: '',
    dir: '',
    async build(tag: string, extra: string[] = []) {
      const r = await runKiln(['build', '--progress', 'json', '-t', tag, ...extra, suite.dir], { root: suite.root, timeoutMs: 900_000 });
      assert.equal(r.code, 0, `kiln build failed:\n${r.stderr.slice(-3000)}`);
      return r;
    },
    async compareWithDocker(t: TestContext, kilnTag: string, compare: CompareOptions) {
      oracle ??= await dockerOracle({ prefix: `kiln-ex-${name}` });
      if (oracle.available !== true) return void t.skip(oracle.available);
      for (const base of bases) await oracle.loadFromKiln(suite.root, base);
      const d = await oracle.build(suite.dir, { args: ['--network', 'host'], timeoutMs: 900_000 });
      if (d.daemonGone) return void t.skip('dockerd went away');
      assert.equal(d.code, 0, `docker build failed:\n${d.stderr.slice(-3000)}`);
      compareImages(await kilnImageTree(suite.root, kilnTag), await oracle.image(d.tag), compare);
      return { oracle, tag: d.tag };
    },
  };
  before(async () => {
    const r = await tempDir(`kiln-root-${name}-`);
    cleanups.push(r.cleanup);
    suite.root = r.dir;
    const c = await copyExample(name);
    cleanups.push(c.cleanup);
    suite.dir = c.dir;
    for (const base of bases) await importBase(suite.root, base);
  });
  after(async () => {
    await oracle?.cleanup();
    for (const c of cleanups.reverse()) await c();
  });
  return suite;
}
