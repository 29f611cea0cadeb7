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
}, { todo: '--build-arg SOURCE_DATE_EPOCH does not set the image times (only the environment variable does)' });

port('testSourceDateEpochDockerfileDefault', async () => {
  const tm = Date.UTC(2015, 9, 21, 7, 28) / 1000;
  const img = await h.kiln({ dockerfile: `ARG SOURCE_DATE_EPOCH=${tm}\nFROM scratch\nCOPY Dockerfile .\n` });
  assert.equal(img.layers, 1);
  assert.equal(createdAt(img), tm);
}, { todo: 'ARG SOURCE_DATE_EPOCH=… in the Dockerfile is ignored' });

port('testSourceDateEpochDockerfileDefaultOverride', async () => {
  const img = await h.kiln({ dockerfile: 'ARG SOURCE_DATE_EPOCH=1700000001\nFROM scratch\nCOPY Dockerfile .\n', buildArgs: { SOURCE_DATE_EPOCH: '1700000002' } });
  assert.equal(createdAt(img), 1700000002);
}, { todo: 'SOURCE_DATE_EPOCH as a build arg or Dockerfile ARG is ignored' });

port('testSourceDateEpochDockerfileDefaultInvalid', async () => {
  const r = await h.kilnFails({ dockerfile: 'ARG SOURCE_DATE_EPOCH=not-a-timestamp\nFROM scratch\nCOPY Dockerfile .\n' });
  assert.match(r.stderr, /invalid SOURCE_DATE_EPOCH: not-a-timestamp/);
}, { todo: 'ARG SOURCE_DATE_EPOCH=… in the Dockerfile is not read (an invalid one is accepted)' });
