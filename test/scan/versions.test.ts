import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { compareApk, compareDpkg, compareGo, compareMaven, compareVersions, validApk } from '../../src/scan/versions/index.js';
import { haveTool, repoRoot, runCommand, tempDir } from '../helpers.js';

const fixtures = path.join(repoRoot, 'test', 'scan', 'fixtures');

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random Debian versions that dpkg accepts: epochs, tildes, letters, digits with leading zeros, '+', '.', revisions. */
function dpkgVersions(count: number, seed: number): Array<[string, string]> {
  const rand = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const parts = ['0', '1', '2', '9', '10', '01', '001', '123', 'a', 'b', 'z', 'A', 'Z', 'rc', '~', '~~', '.', '+', '~rc1', 'dfsg', '.0', '+b1'];
  const upstream = (): string => {
    let s = pick(['0', '1', '2', '10', '1.0', '2.36', '0.9']);
    for (let n = Math.floor(rand() * 5); n > 0; n--) s += pick(parts);
    return s;
  };
  const revision = (): string => {
    let s = pick(['1', '2', '0', '1ubuntu1', 'a', '10', '~1']);
    for (let n = Math.floor(rand() * 3); n > 0; n--) s += pick(parts);
    return s;
  };
  const version = (): string => {
    const epoch = rand() < 0.25 ? `${pick(['0', '1', '2', '10'])}:` : '';
    const up = upstream();
    // an upstream with '-' needs a revision after it
    const rev = rand() < 0.6 ? `-${revision()}` : '';
    const up2 = rev !== '' && rand() < 0.15 ? `${up}-${pick(['1', 'x'])}` : up;
    return `${epoch}${up2}${rev}`;
  };
  const mutate = (v: string): string => {
    const i = Math.floor(rand() * (v.length + 1));
    const choice = rand();
    if (choice < 0.3) return v.slice(0, i) + pick(['~', '0', 'a', '1', '.', '+']) + v.slice(i);
    if (choice < 0.5) return v.startsWith('1:') ? v.slice(2) : `1:${v}`;
    if (choice < 0.7) return v.replace(/\d/, (d) => (d === '0' ? '00' : d));
    return version();
  };
  const out: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    const a = version();
    const b = rand() < 0.5 ? a : mutate(a);
    // a mutation may have produced something dpkg refuses (upstream not starting with a digit)
    if (!/^(\d+:)?\d[A-Za-z0-9.+~-]*$/.test(b) || b.endsWith('-')) out.push([a, a]);
    else out.push([a, b]);
  }
  return out;
}

test('dpkg: the order of thousands of generated pairs equals `dpkg --compare-versions`', { skip: !haveTool('dpkg') && 'dpkg is not installed' }, async () => {
  const pairs = dpkgVersions(2500, 1302);
  const t = await tempDir('kiln-dpkg-versions-');
  try {
    const file = path.join(t.dir, 'pairs');
    await fs.writeFile(file, pairs.map(([a, b]) => `${a} ${b}\n`).join(''));
    // one shell, dpkg per pair: "<", "=" or ">" per line (dpkg says nothing on stdout for valid versions)
    const script = 'while read a b; do if dpkg --compare-versions "$a" lt "$b"; then echo "<"; elif dpkg --compare-versions "$a" eq "$b"; then echo "="; else echo ">"; fi; done < "$1"';
    const r = await runCommand('sh', ['-c', script, 'sh', file], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'dpkg warned about a generated version');
    const verdicts = r.stdout.trim().split('\n');
    assert.equal(verdicts.length, pairs.length);
    const mismatches: string[] = [];
    let less = 0;
    let equal = 0;
    pairs.forEach(([a, b], i) => {
      const c = compareDpkg(a, b);
      const ours = c < 0 ? '<' : c > 0 ? '>' : '=';
      if (ours === '<') less++;
      if (ours === '=') equal++;
      if (ours !== verdicts[i]) mismatches.push(`${a} ${verdicts[i]} ${b} (kiln says ${ours})`);
    });
    assert.deepEqual(mismatches.slice(0, 20), []);
    // the generator exercises all three outcomes in fair numbers
    assert.ok(less > 300 && equal > 300 && pairs.length - less - equal > 300, `${less} < / ${equal} = / ${pairs.length - less - equal} >`);
  } finally {
    await t.cleanup();
  }
});

test('dpkg: deb-version(7) rules by example', () => {
  assert.ok(compareDpkg('1.0~rc1', '1.0') < 0, 'a tilde sorts before the end');
  assert.ok(compareDpkg('1.0~~', '1.0~') < 0);
  assert.ok(compareDpkg('1.0', '1.0a') < 0, 'the end sorts before a letter');
  assert.ok(compareDpkg('1.0a', '1.0+') < 0, 'letters sort before other characters');
  assert.ok(compareDpkg('1:0.1', '2.0') > 0, 'the epoch wins');
  assert.equal(compareDpkg('0:1.2-3', '1.2-3'), 0, 'epoch 0 is the absent epoch');
  assert.equal(compareDpkg('1.002', '1.2'), 0, 'numbers compare as numbers');
  assert.ok(compareDpkg('2.36-9+deb12u4', '2.36-9+deb12u10') < 0);
  assert.ok(compareDpkg('1.2.3-1', '1.2.3-1.1') < 0);
  assert.ok(compareDpkg('7.88.1-10+deb12u5', '7.88.1-10+deb12u12') < 0);
});

test("apk: every vector of apk-tools' test/unit/version.data", () => {
  const lines = readFileSync(path.join(fixtures, 'apk-version.data'), 'utf8').split('\n');
  const failures: string[] = [];
  let checked = 0;
  for (const raw of lines) {
    const line = raw.split('#')[0].trim();
    if (line === '') continue;
    checked++;
    const fields = line.split(/\s+/);
    if (fields.length === 1) {
      const invert = fields[0].startsWith('!');
      const v = invert ? fields[0].slice(1) : fields[0];
      if (validApk(v) === invert) failures.push(`${line}: validity`);
      continue;
    }
    const [a, rawOp, b] = fields;
    const invert = rawOp.startsWith('!');
    const op = invert ? rawOp.slice(1) : rawOp;
    const fuzzy = op.includes('~');
    const c = compareApk(a, b, fuzzy);
    const mask = new Set(op.replace('~', '='));
    const ok = (c < 0 && mask.has('<')) || (c === 0 && mask.has('=')) || (c > 0 && mask.has('>'));
    if (ok === invert) failures.push(`${line}: kiln says ${c}`);
  }
  assert.ok(checked > 700, `read ${checked} vectors`);
  assert.deepEqual(failures, []);
});

test('apk: suffixes and revisions', () => {
  const ordered = ['1.2_alpha', '1.2_alpha2', '1.2_beta', '1.2_pre1', '1.2_rc1', '1.2', '1.2-r1', '1.2_cvs', '1.2_svn', '1.2_git20240101', '1.2_hg', '1.2_p1', '1.2_p1-r1', '1.2a', '1.2.1'];
  for (let i = 0; i + 1 < ordered.length; i++) assert.ok(compareApk(ordered[i], ordered[i + 1]) < 0, `${ordered[i]} < ${ordered[i + 1]}`);
  assert.ok(compareVersions('apk', '3.1.4-r5', '3.1.4-r10') < 0);
});

/** Asserts that each version in the list is older than every later one (and the reverse). */
function assertOrdered(name: string, cmp: (a: string, b: string) => number, list: string[]): void {
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      assert.ok(cmp(list[i], list[j]) < 0, `${name}: ${list[i]} < ${list[j]}`);
      assert.ok(cmp(list[j], list[i]) > 0, `${name}: ${list[j]} > ${list[i]}`);
    }
  }
}

test('npm: the semver 2.0 precedence list and npm versions', () => {
  // semver.org §11's example, then release lines
  assertOrdered('npm', (a, b) => compareVersions('npm', a, b), ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.2.0', '1.10.0', '2.0.0']);
  assert.equal(compareVersions('npm', '1.0.0+build.1', '1.0.0+build.2'), 0, 'build metadata does not order');
  assert.equal(compareVersions('npm', 'v1.2.3', '1.2.3'), 0, 'loose: a leading v');
});

test('PyPI: the PEP 440 ordering example', () => {
  // PEP 440's "summary of permitted suffixes and relative ordering", in order
  assertOrdered('pypi', (a, b) => compareVersions('pypi', a, b), [
    '1.dev0', '1.0.dev456', '1.0a1', '1.0a2.dev456', '1.0a12.dev456', '1.0a12', '1.0b1.dev456', '1.0b2', '1.0b2.post345.dev456', '1.0b2.post345', '1.0rc1.dev456', '1.0rc1', '1.0', '1.0+abc.5', '1.0+abc.7', '1.0+5', '1.0.post456.dev34', '1.0.post456', '1.0.15', '1.1.dev1', '1!0.1',
  ]);
  assert.equal(compareVersions('pypi', '1.0', '1.0.0'), 0);
  assert.equal(compareVersions('pypi', '1.0RC1', '1.0rc1'), 0, 'normalised spelling');
});

test('Go: v prefixes, shorthands, +incompatible, pseudo-versions', () => {
  assertOrdered('go', compareGo, [
    'v0.0.0-20191109021931-daa7c04131f5',
    'v0.0.0-20200101000000-aaaaaaaaaaaa',
    'v0.1.0',
    'v1.2.3',
    'v1.2.4-0.20191109021931-daa7c04131f5',
    'v1.2.4-pre',
    'v1.2.4',
    'v1.10.0',
    'v2.0.0+incompatible',
    'v2.1.0',
  ]);
  assert.equal(compareGo('v1.2', 'v1.2.0'), 0);
  assert.equal(compareGo('1.2.3', 'v1.2.3'), 0, "OSV writes Go versions without the v");
  assert.equal(compareGo('v2.0.0+incompatible', 'v2.0.0'), 0);
  assert.ok(compareGo('go1.21.5', '1.21.10') < 0, 'toolchain versions');
  assert.ok(compareGo('go1.21rc2', 'go1.21.0') < 0);
  assert.ok(compareGo('garbage', 'v0.0.1') < 0, 'an invalid version orders first');
});

// Maven: the ordered lists and equalities of maven-artifact's ComparableVersionTest (apache/maven,
// compat/maven-artifact), as facts about the order.
test('Maven: ComparableVersionTest qualifier and number orders', () => {
  assertOrdered('maven', compareMaven, ['1-alpha2snapshot', '1-alpha2', '1-alpha-123', '1-beta-2', '1-beta123', '1-m2', '1-m11', '1-rc', '1-cr2', '1-rc123', '1-SNAPSHOT', '1', '1-sp', '1-sp2', '1-sp123', '1-abc', '1-def', '1-pom-1', '1-1-snapshot', '1-1', '1-2', '1-123']);
  assertOrdered('maven', compareMaven, ['2.0', '2.0.a', '2-1', '2.0.2', '2.0.123', '2.1.0', '2.1-a', '2.1b', '2.1-c', '2.1-1', '2.1.0.1', '2.2', '2.123', '11.a2', '11.a11', '11.b2', '11.b11', '11.m2', '11.m11', '11', '11.a', '11b', '11c', '11m']);
});

test('Maven: ComparableVersionTest equalities and pairs', () => {
  const equal: Array<[string, string]> = [
    ['1', '1'], ['1', '1.0'], ['1', '1.0.0'], ['1.0', '1.0.0'], ['1', '1-0'], ['1', '1.0-0'], ['1.0', '1.0-0'],
    ['1a', '1-a'], ['1a', '1.0-a'], ['1a', '1.0.0-a'], ['1.0a', '1-a'], ['1.0.0a', '1-a'], ['1x', '1-x'], ['1x', '1.0-x'], ['1x', '1.0.0-x'], ['1.0x', '1-x'], ['1.0.0x', '1-x'], ['1cr', '1rc'],
    ['1a1', '1-alpha-1'], ['1b2', '1-beta-2'], ['1m3', '1-milestone-3'],
    ['1X', '1x'], ['1A', '1a'], ['1B', '1b'], ['1M', '1m'], ['1Cr', '1Rc'], ['1cR', '1rC'], ['1m3', '1Milestone3'], ['1m3', '1MileStone3'], ['1m3', '1MILESTONE3'],
    ['1ga', '1'], ['1release', '1'], ['1final', '1'], ['1GA', '1'], ['1RELeaSE', '1'], ['1FINAL', '1'],
    ['1.0.0-alpha1', '1.0.0-ALPHA1'], ['1.a', '1.A'], ['1.é', '1.É'],
    ['1-abcdefghijklmnopqrstuvwxyz', '1-ABCDEFGHIJKLMNOPQRSTUVWXYZ'],
    ['0000000000000000001', '1'], ['000000001', '01'], ['0000000000000000000', '0'], ['00', '0'],
  ];
  for (const [a, b] of equal) {
    assert.equal(compareMaven(a, b), 0, `${a} == ${b}`);
    assert.equal(compareMaven(b, a), 0, `${b} == ${a}`);
  }
  const less: Array<[string, string]> = [
    ['1', '2'], ['1.5', '2'], ['1', '2.5'], ['1.0', '1.1'], ['1.1', '1.2'], ['1.0.0', '1.1'], ['1.0.1', '1.1'], ['1.1', '1.2.0'],
    ['1.0-alpha-1', '1.0'], ['1.0-alpha-1', '1.0-alpha-2'], ['1.0-alpha-1', '1.0-beta-1'], ['1.0-beta-1', '1.0-SNAPSHOT'], ['1.0-SNAPSHOT', '1.0'], ['1.0-alpha-1-SNAPSHOT', '1.0-alpha-1'],
    ['1.0', '1.0-1'], ['1.0-1', '1.0-2'], ['1.0.0', '1.0-1'], ['2.0-1', '2.0.1'], ['2.0.1-klm', '2.0.1-lmn'], ['2.0.1', '2.0.1-xyz'], ['2.0.1', '2.0.1-123'], ['2.0.1-xyz', '2.0.1-123'],
    ['0.7', '2'], ['0.2', '1.0.7'],
    ['é', '1'], ['\u{1D7E4}', '1'], ['J', '7'], ['c', '7'], ['\u0668', '1'], ['\u0668', '9'], ['aardvark', 'zebra'], ['zebra', 'ζέβρα'],
    ['6.1.0rc3', '6.1.0'], ['6.1.0rc3', '6.1H.5-beta'], ['6.1.0', '6.1H.5-beta'],
    ['20190126.230843', '1234567890.12345'], ['1234567890.12345', '123456789012345.1H.5-beta'], ['123456789012345.1H.5-beta', '12345678901234567890.1H.5-beta'],
    ['1-0.alpha', '1'], ['1-0.beta', '1'], ['1-0.alpha', '1-0.beta'],
    ['1.0.final-redhat', '1.0-sp1-redhat'], ['1.0.final-redhat', '1.0-sp-1-redhat'], ['1.0.final-redhat', '1.0-sp.1-redhat'],
  ];
  for (const x of ['abc', 'alpha', 'a', 'beta', 'b', 'def', 'milestone', 'm', 'RC']) {
    less.push([`1.0.0.${x}1`, `1.0.0-${x}2`]);
    for (const [a, b] of [[`2-${x}`, `2.0.${x}`], [`2-${x}`, `2.0.0.${x}`], [`2.0.${x}`, `2.0.0.${x}`]]) assert.equal(compareMaven(a, b), 0, `${a} == ${b}`);
  }
  for (const [a, b] of less) {
    assert.ok(compareMaven(a, b) < 0, `${a} < ${b}`);
    assert.ok(compareMaven(b, a) > 0, `${b} > ${a}`);
  }
});
