/**
 * The deterministic parts of the bench's node-app scenario (scripts/bench-node.ts): the two
 * dependency sets it alternates between are real, in sync with their locks (npm ci refuses
 * otherwise), each write is new content, and the table's ratios. No timing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEP_VARIANTS, NODE_FIGURES, nodeTable, writeDeps, writeSource } from '../../scripts/bench-node.js';
import { parseArgs } from '../../scripts/bench.js';
import { tempDir } from '../helpers.js';

interface Lock {
  packages: Record<string, { dependencies?: Record<string, string>; version?: string }>;
}

describe('bench node-app', () => {
  it('alternates between two dependency sets, each package.json in sync with its lock', async () => {
    const t = await tempDir('kiln-bench-node-');
    try {
      await fs.mkdir(path.join(t.dir, 'src'));
      const seen: string[] = [];
      for (const [variant, revision] of [[0, 'r1'], [1, 'r2'], [2, 'r3']] as const) {
        await writeDeps(t.dir, variant, revision);
        const pkg = JSON.parse(await fs.readFile(path.join(t.dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; description: string };
        const lock = JSON.parse(await fs.readFile(path.join(t.dir, 'package-lock.json'), 'utf8')) as Lock;
        assert.deepEqual(pkg.dependencies, lock.packages[''].dependencies);
        for (const [name, version] of Object.entries(pkg.dependencies)) assert.equal(lock.packages[`node_modules/${name}`]?.version, version);
        assert.equal(pkg.description, `bench revision ${revision}`);
        seen.push(Object.keys(pkg.dependencies).sort().join(','));
      }
      assert.deepEqual(seen, ['debug,escape-html', 'bytes,debug,escape-html', 'debug,escape-html']);
      assert.equal(DEP_VARIANTS.length, 2);
      await writeSource(t.dir, 'abc-00001');
      const src = await fs.readFile(path.join(t.dir, 'src', 'greeting.js'), 'utf8');
      assert.match(src, /abc-00001/);
      // still the module server.js loads
      const mod = { exports: {} as { greeting?: (n: string) => string } };
      new Function('exports', 'module', src)(mod.exports, mod);
      assert.equal(mod.exports.greeting?.('x'), 'Hello, x (abc-00001)');
    } finally {
      await t.cleanup();
    }
  });

  it('reports medians and kiln/BuildKit, kiln/buildah ratios', () => {
    const figures = NODE_FIGURES.map((f) => ({ figure: f.id, title: f.title, samples: {}, median: {}, errors: {} }));
    figures[0].samples = { kiln: [10_000, 12_000, 11_000], buildkit: [20_000], buildah: [] };
    figures[0].median = { kiln: 11_000, buildkit: 22_000 };
    const table = nodeTable(figures, 3).split('\n');
    assert.equal(table.length, 2 + NODE_FIGURES.length);
    const cells = table[2].split('|').map((c) => c.trim());
    assert.deepEqual(cells.slice(2, 7), ['11.00 s', '22.00 s (n=1)', '—', '0.50×', '—']);
  });

  it('is a scenario of npm run bench', () => {
    assert.deepEqual(parseArgs(['--only', 'node-app']).only, ['node-app']);
  });
});
