/** The in-image listing script and its two formats, run on a tree of every common kind of entry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers.js';
import { formatWithLinkCounts, formatWithLinkGroups, LISTING_SCRIPT, parseListing } from './listing.js';

test('the listing: types, modes, owners, link counts and groups, targets and digests; missing roots left out', async (t) => {
  const { dir, cleanup } = await tempDir('kiln-listing-');
  t.after(cleanup);
  const r = path.join(dir, 'r');
  await fs.mkdir(path.join(r, 'd', 'e'), { recursive: true });
  await fs.writeFile(path.join(r, 'd', 'f'), 'a\n');
  await fs.link(path.join(r, 'd', 'f'), path.join(r, 'd', 'g'));
  await fs.symlink('../f', path.join(r, 'd', 'e', 'l'));
  await fs.writeFile(path.join(r, ' sp ace'), '');
  for (const [p, m] of [['', 0o755], ['d', 0o4750], ['d/e', 0o700], ['d/f', 0o644], [' sp ace', 0o600]] as const) await fs.chmod(path.join(r, p), m);
  const run = spawnSync('sh', ['-c', LISTING_SCRIPT, 'sh', r, path.join(dir, 'missing')], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  assert.equal(run.status, 0, run.stderr);
  const entries = parseListing(run.stdout);
  const own = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
  const md5 = (s: string) => createHash('md5').update(s).digest('hex');
  assert.equal(
    formatWithLinkCounts(entries),
    [
      `${r}|directory|755|${own}|3|`,
      `${r}/ sp ace|regular empty file|600|${own}|1|${md5('')}`,
      `${r}/d|directory|4750|${own}|3|`,
      `${r}/d/e|directory|700|${own}|2|`,
      `${r}/d/e/l|symbolic link|777|${own}|1|-> ../f`,
      `${r}/d/f|regular file|644|${own}|2|${md5('a\n')}`,
      `${r}/d/g|regular file|644|${own}|2|${md5('a\n')}`,
      '',
    ].join('\n'),
  );
  const o = own.replace(':', '|');
  assert.deepEqual(formatWithLinkGroups(entries), [
    `${r}|directory|755|${o}|||`,
    `${r}/ sp ace|regular empty file|600|${o}|1||${md5('').slice(0, 12)}`,
    `${r}/d|directory|4750|${o}|||`,
    `${r}/d/e|directory|700|${o}|||`,
    `${r}/d/e/l|symbolic link|777|${o}|1||../f`,
    `${r}/d/f|regular file|644|${o}|2|=${r}/d/f|${md5('a\n').slice(0, 12)}`,
    `${r}/d/g|regular file|644|${o}|2|=${r}/d/f|${md5('a\n').slice(0, 12)}`,
  ]);
});
