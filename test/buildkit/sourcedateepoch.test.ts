/** Port of BuildKit's frontend/dockerfile/dockerfile_source_date_epoch_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, useHarness, type ImageResult } from './harness.js';

const h = useHarness();

function createdAt(img: ImageResult): number {
  return Date.parse(String((img.config as { created?: string }).created)) / 1000;
}

port('testSourceDateEpochWithoutExporter', async () => {
  const tm = 1700000001;
  const img = await h.kiln({ dockerfile: 'FROM scratch\nENTRYPOINT foo bar\nCOPY Dockerfile .\n', buildArgs: { SOURCE_DATE_EPOCH: String(tm) } });
  assert.equal(createdAt(img), tm);
  for (const e of img.config.history ?? []) assert.equal(Date.parse(String((e as { created?: string }).created)) / 1000, tm);
});

port('testSourceDateEpochDockerfileDefault', async () => {
  const tm = Date.UTC(2015, 9, 21, 7, 28) / 1000;
  const img = await h.kiln({ dockerfile: `ARG SOURCE_DATE_EPOCH=${tm}\nFROM scratch\nCOPY Dockerfile .\n` });
  assert.equal(img.layers, 1);
  assert.equal(createdAt(img), tm);
});

port('testSourceDateEpochDockerfileDefaultOverride', async () => {
  const img = await h.kiln({ dockerfile: 'ARG SOURCE_DATE_EPOCH=1700000001\nFROM scratch\nCOPY Dockerfile .\n', buildArgs: { SOURCE_DATE_EPOCH: '1700000002' } });
  assert.equal(createdAt(img), 1700000002);
});

port('testSourceDateEpochDockerfileDefaultInvalid', async () => {
  const r = await h.kilnFails({ dockerfile: 'ARG SOURCE_DATE_EPOCH=not-a-timestamp\nFROM scratch\nCOPY Dockerfile .\n' });
  assert.match(r.stderr, /invalid SOURCE_DATE_EPOCH: not-a-timestamp/);
});
