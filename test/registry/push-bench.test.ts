/** The bench's registry scenario context: the promised layers, deterministic, random and text data, a Dockerfile that parses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { generateRegistryContext } from '../../scripts/bench-registry.js';
import { parseDockerfile } from '../../src/dockerfile/index.js';
import { tempDir } from '../helpers.js';

test('the registry bench context: one COPY per data file, random and text alternating, the same bytes every time', async () => {
  const a = await tempDir('kiln-bench-reg-');
  const b = await tempDir('kiln-bench-reg-');
  try {
    const shape = await generateRegistryContext(a.dir, true);
    await generateRegistryContext(b.dir, true);
    const df = parseDockerfile(await fs.readFile(path.join(a.dir, 'Dockerfile'), 'utf8'), 'Dockerfile');
    const copies = df.instructions.filter((i) => i.keyword === 'copy');
    assert.equal(copies.length, shape.layers);
    let total = 0;
    for (const c of copies) {
      const name = c.args[0];
      const data = await fs.readFile(path.join(a.dir, name));
      total += data.length;
      const again = await fs.readFile(path.join(b.dir, name));
      assert.equal(createHash('sha256').update(data).digest('hex'), createHash('sha256').update(again).digest('hex'), `${name} is deterministic`);
      const ratio = zlib.gzipSync(data.subarray(0, 1 << 20), { level: 6 }).length / (1 << 20);
      if (name.startsWith('random')) assert.ok(ratio > 0.99, `${name} does not compress (${ratio})`);
      else assert.ok(ratio < 0.5, `${name} compresses like text (${ratio})`);
    }
    assert.equal(total, shape.bytes);
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
});
