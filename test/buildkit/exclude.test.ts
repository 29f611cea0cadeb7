/** Port of BuildKit's frontend/dockerfile/exclude_patterns_test.go (see test/buildkit/README.md). */
import assert from 'node:assert/strict';
import { hasEntry, port, resolveEntry, useHarness, type ContextEntry, type ImageResult } from './harness.js';

const h = useHarness();

const files: Record<string, ContextEntry> = {
  dir1: { dir: true, mode: 0o777 },
  dir2: { dir: true, mode: 0o777 },
  dir3: { dir: true, mode: 0o777 },
  dir4: { dir: true, mode: 0o777 },
  'dir1/file-101.png': { content: '2', mode: 0o600 },
  'dir1/file-102.txt': { content: '3', mode: 0o600 },
  'dir1/file-103.jpeg': { content: '4', mode: 0o600 },
  'dir2/file-201.pdf': { content: '6', mode: 0o600 },
  'dir2/file-202.jpeg': { content: '7', mode: 0o600 },
  'dir2/file-203.png': { content: '8', mode: 0o600 },
  'dir3/file-301.mp3': { content: '9', mode: 0o600 },
  'dir3/file-302.mpeg': { content: '10', mode: 0o600 },
  'dir4/file-401.txt': { content: '11', mode: 0o600 },
  'dir4/file-402.txt': { symlink: 'file-401.txt' },
  'dir4/file-403.txt': { symlink: 'file-404.txt' },
};

/** path → expected content (a symlink's target for links), or null: must not exist */
const expected: Record<string, string | null> = {
  'builder1/1/dir1/file-101.png': null,
  'builder1/1/dir1/file-102.txt': '3',
  'builder1/1/dir1/file-103.jpeg': null,
  'builder1/1/dir2/file-201.pdf': '6',
  'builder1/1/dir2/file-202.jpeg': null,
  'builder1/1/dir2/file-203.png': null,
  'builder1/1/dir3/file-301.mp3': '9',
  'builder1/1/dir3/file-302.mpeg': '10',
  'builder1/1/dir4/file-401.txt': '11',
  'builder1/1/dir4/file-402.txt': 'file-401.txt',
  'builder1/1/dir4/file-403.txt': 'file-404.txt',
  'builder2/2/dir1/file-101.png': '2',
  'builder2/2/dir1/file-102.txt': null,
  'builder2/2/dir1/file-103.jpeg': '4',
  'builder2/2/dir2/file-201.pdf': null,
  'builder2/2/dir2/file-202.jpeg': '7',
  'builder2/2/dir2/file-203.png': '8',
  'builder2/2/dir3/file-301.mp3': '9',
  'builder2/2/dir3/file-302.mpeg': '10',
  'builder2/2/dir4/file-401.txt': null,
  'builder2/2/dir4/file-402.txt': null,
  'builder2/2/dir4/file-403.txt': null,
  'builder3/3/file-301.mp3': null,
  'builder3/3/file-302.mpeg': '10',
  'builder4/4/file-101.png': null,
  'builder4/4/file-102.txt': null,
  'builder4/4/file-103.jpeg': null,
  'builder4/4/file-201.pdf': null,
  'builder4/4/file-202.jpeg': null,
  'builder4/4/file-203.png': null,
  'builder4/4/file-301.mp3': null,
  'builder4/4/file-302.mpeg': '10',
  'builder4/4/dir4/file-401.txt': null,
  'builder4/4/dir4/file-402.txt': null,
  'builder4/4/dir4/file-403.txt': null,
  'builder5/5/file-101.png': null,
  'builder5/5/file-102.txt': '3',
  'builder5/5/file-103.jpeg': null,
  'builder5/5/file-201.pdf': null,
  'builder5/5/file-202.jpeg': null,
  'builder5/5/file-203.png': null,
  'builder5/5/file-301.mp3': null,
  'builder5/5/file-302.mpeg': null,
  'builder5/5/file-401.txt': '11',
  'builder5/5/file-402.txt': 'file-401.txt',
  'builder5/5/file-403.txt': 'file-404.txt',
};

function check(img: ImageResult): void {
  const problems: string[] = [];
  for (const [p, want] of Object.entries(expected)) {
    if (want === null) {
      if (hasEntry(img, p)) problems.push(`${p} should be excluded`);
      continue;
    }
    if (!hasEntry(img, p)) {
      problems.push(`${p} is missing`);
      continue;
    }
    const e = resolveEntry(img, p);
    const got = e.type === 'symlink' ? e.linkname : e.data?.toString('utf8');
    if (got !== want) problems.push(`${p}: ${got} instead of ${want}`);
  }
  if (resolveEntry(img, 'builder6/6').type !== 'dir') problems.push('builder6/6 is not a directory');
  if ([...img.fs.keys()].some((k) => k.startsWith('/builder6/6/'))) problems.push('builder6/6 is not empty');
  assert.deepEqual(problems, []);
}

const stages = (from: string, add: string) => [
  'FROM scratch as builder1',
  `COPY ${from}--exclude=*/*.png --exclude=*/*.jpeg . /1`,
  'FROM scratch as builder2',
  `COPY ${from}--exclude=*/*.pdf --exclude=*/*.txt . /2`,
  'FROM scratch as builder3',
  `${add} --exclude=*.mp3 dir3/ /3/`,
  'FROM scratch as builder4',
  `COPY ${from}--exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/`,
  'FROM scratch as builder5',
  `${add} --exclude=*.mp* --exclude=*.jpeg --exclude=*.png --exclude=*.pdf dir* /5`,
  'FROM scratch as builder6',
  `${add} --exclude=* dir* /6`,
  'FROM scratch',
  ...[1, 2, 3, 4, 5, 6].map((i) => `COPY --from=builder${i} / /builder${i}`),
  '',
];

port('testExcludedFilesOnCopy', async () => {
  // --exclude needs Dockerfile 1.7 (not docker 20.10): assertion test. The Dockerfile sits
  // outside the context, as the Go test's separate dockerfile directory
  check(await h.kiln({ dockerfile: stages('', 'ADD').join('\n'), files, externalDockerfile: true }));
  // the Go test's second half reads the files from a git checkout; a stage holding the
  // context plays that part here (COPY --from, as there)
  check(await h.kiln({ dockerfile: ['FROM scratch AS base', 'COPY . /', ...stages('--from=base ', 'COPY --from=base')].join('\n'), files, externalDockerfile: true }));
});
