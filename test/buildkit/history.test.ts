/** Port of BuildKit's frontend/dockerfile/dockerfile_history_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { port, useHarness } from './harness.js';

const h = useHarness();

port('testExportedHistory', async () => {
  const base = await h.kiln({ dockerfile: 'FROM busybox\n' });
  const baseHistory = base.config.history?.length ?? 0;
  const img = await h.differential({
    dockerfile: 'FROM busybox AS base\nENV foo=bar\nCOPY foo /foo2\nFROM busybox\nLABEL lbl=val\nCOPY --from=base foo2 foo3\nWORKDIR /\nRUN echo bar > foo4\nRUN ["ls"]\nEXPOSE 2375 5000 1234/udp\n',
    files: { foo: { content: 'contents0', mode: 0o600 } },
  }, { history: true, layers: true });
  assert.equal(img.config.rootfs?.diff_ids?.length, base.layers + 3, 'COPY, RUN and RUN add layers; LABEL, WORKDIR / and EXPOSE do not');
  const history = img.config.history ?? [];
  assert.equal(history.length, baseHistory + 6, 'history is scoped to the final stage');
  const own = history.slice(baseHistory);
  const expect: Array<[string, boolean]> = [
    ['lbl=val', true],
    ['COPY foo2 foo3', false],
    ['WORKDIR /', true],
    ['echo bar > foo4', false],
    ['RUN ls', false],
    ['EXPOSE [1234/udp 2375/tcp 5000/tcp]', true],
  ];
  expect.forEach(([text, empty], i) => {
    assert.ok(own[i].created_by?.includes(text), `history[${i}] ${own[i].created_by} has ${text}`);
    assert.equal(Boolean(own[i].empty_layer), empty, `history[${i}] empty_layer`);
    assert.ok((own[i] as { created?: string }).created, `history[${i}] has a creation time`);
  });
}, { todo: 'EXPOSE history lists the ports unsorted ("EXPOSE [2375/tcp 5000/tcp 1234/udp]")' });

port('testExportedHistoryFlattenArgs', async () => {
  const img = await h.differential({ dockerfile: 'FROM busybox\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN ls /etc/\n' }, { history: true });
  const history = img.config.history ?? [];
  const first = history.findIndex((e) => e.created_by === 'ARG foo=bar');
  assert.ok(first > 0, JSON.stringify(history));
  assert.equal(history.length, first + 4);
  assert.match(history[first + 1].created_by ?? '', /ARG bar=123/);
  assert.match(history[first + 2].created_by ?? '', /ARG foo=bar2/);
  const runLine = history[first + 3].created_by ?? '';
  assert.ok(runLine.includes('ls /etc/'), runLine);
  assert.ok(!runLine.includes('ARG foo=bar'), runLine);
  assert.ok(runLine.includes('RUN |2 foo=bar2 bar=123 '), runLine);
});
