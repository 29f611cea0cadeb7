/** finalizeConfig: the planned image config finished with what the solve knows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finalizeConfig } from '../../src/export/config.js';
import type { ImageConfig } from '../../src/oci/types.js';

const planned = (): ImageConfig => ({
  architecture: 'amd64',
  os: 'linux',
  created: 'planned',
  config: { Labels: { a: 'dockerfile', b: 'dockerfile' } },
  rootfs: { type: 'layers', diff_ids: [] },
  history: [
    { created: '2020-01-01T00:00:00Z', created_by: 'base layer' },
    { created: '2020-01-02T00:00:00Z', created_by: 'base env', empty_layer: true },
    { created: 'planned', created_by: 'RUN a' },
    { created: 'planned', created_by: 'ENV x=1', empty_layer: true },
    { created: 'planned', created_by: 'RUN true' },
    { created: 'planned', created_by: 'COPY f /' },
  ],
});

const diffIds = ['sha256:' + '1'.repeat(64), 'sha256:' + '2'.repeat(64), 'sha256:' + '3'.repeat(64)];

test('steps are dated by when they were made, steps without a layer by the one before, and a step that changed nothing is an empty layer', () => {
  const input = planned();
  const before = structuredClone(input);
  const config = finalizeConfig(input, {
    baseHistoryLength: 2,
    diffIds,
    chain: [
      { added: true, createdAt: '2021-05-01T00:00:00Z' },
      { added: false, createdAt: '2021-05-02T00:00:00Z' },
      { added: true, createdAt: '2021-05-03T00:00:00Z' },
    ],
  });
  assert.deepEqual(input, before, 'the planned config is left as it was');
  assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: diffIds });
  assert.deepEqual(
    config.history?.map((h) => [h.created_by, h.created, h.empty_layer === true]),
    [
      ['base layer', '2020-01-01T00:00:00Z', false],
      ['base env', '2020-01-02T00:00:00Z', true],
      ['RUN a', '2021-05-01T00:00:00Z', false],
      ['ENV x=1', '2021-05-01T00:00:00Z', true],
      ['RUN true', '2021-05-02T00:00:00Z', true],
      ['COPY f /', '2021-05-03T00:00:00Z', false],
    ],
  );
  assert.equal(config.created, '2021-05-03T00:00:00Z', 'the image is as new as its newest step');
});

test('with SOURCE_DATE_EPOCH every step of the build gets the epoch; --label adds to and overrides the Dockerfile labels', () => {
  const epoch = '2000-01-01T00:00:00Z';
  const config = finalizeConfig(planned(), {
    baseHistoryLength: 2,
    diffIds,
    chain: [{ added: true, createdAt: '2021-05-01T00:00:00Z' }, { added: true }, { added: true }],
    epochTime: epoch,
    labels: { b: 'cli', c: 'cli' },
  });
  assert.deepEqual(config.history?.filter((h) => !h.empty_layer).map((h) => h.created), ['2020-01-01T00:00:00Z', epoch, epoch, epoch]);
  assert.equal(config.created, 'planned', 'the plan dated the image with the epoch already');
  assert.deepEqual(config.config?.Labels, { a: 'dockerfile', b: 'cli', c: 'cli' });
});

test('an image with no history of its own and no base is dated at the epoch of time', () => {
  const config = finalizeConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, history: [{ created_by: 'ENV a=b', empty_layer: true }] }, { baseHistoryLength: 0, diffIds: [], chain: [] });
  assert.deepEqual(config.history, [{ created_by: 'ENV a=b', empty_layer: true, created: '1970-01-01T00:00:00Z' }]);
  assert.equal(config.created, '1970-01-01T00:00:00Z');
});
