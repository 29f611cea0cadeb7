/**
 * Regenerates test/fixtures/buildkit-corpus/<case>/expected.json from real BuildKit:
 * starts dockerd when needed, loads kiln's busybox base image into it (kiln save →
 * docker load), builds every case with DOCKER_BUILDKIT=1 /usr/bin/docker build, and
 * records the normalized image (config, author, history, layer count, unused build
 * args) plus the stdout of the commands in the case's checks.json.
 *
 * Cases whose args.json says "buildkit": false are skipped: their expected.json is
 * hand-written. Where current BuildKit differs from dockerd 20.10's, args.json lists
 * "deviations" (JSON pointer, value, why) applied on top of what dockerd produced.
 *
 * Usage: npx tsc -p . && node dist/scripts/gen-buildkit-fixtures.js [case-name...]
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { busyboxRootfsTar, dockerCli, ensureDockerd, runCommand, runKiln, tempDir } from '../test/helpers.js';
import {
  applyDeviations,
  buildArgFlags,
  checkKey,
  copyContext,
  corpusDir,
  loadCases,
  normalizeConfig,
  parseUnusedBuildArgs,
  type CorpusCase,
  type NormalizedImage,
} from '../test/frontend/corpus.js';

const dockerEnv = { DOCKER_BUILDKIT: '1' };

function docker(args: string[], opts: { input?: string } = {}) {
  return runCommand(dockerCli, args, { env: dockerEnv, input: opts.input, timeoutMs: 600_000 });
}

async function loadBusybox(): Promise<void> {
  const { dir, cleanup } = await tempDir('kiln-gen-');
  try {
    const tar = await busyboxRootfsTar();
    let r = await runKiln(['import', tar, 'busybox:latest'], { root: dir });
    if (r.code !== 0) throw new Error(`kiln import: ${r.stderr}`);
    const archive = path.join(dir, 'busybox-docker.tar');
    r = await runKiln(['save', '-o', archive, 'busybox:latest'], { root: dir });
    if (r.code !== 0) throw new Error(`kiln save: ${r.stderr}`);
    r = await docker(['load', '-i', archive]);
    if (r.code !== 0) throw new Error(`docker load: ${r.stderr}`);
  } finally {
    await cleanup();
  }
}

/** The image config JSON exactly as docker stores it (docker save → manifest.json → Config). */
async function savedConfig(image: string): Promise<Record<string, unknown>> {
  const { dir, cleanup } = await tempDir('kiln-gen-save-');
  try {
    const tar = path.join(dir, 'image.tar');
    const r = await docker(['save', '-o', tar, image]);
    if (r.code !== 0) throw new Error(`docker save ${image}: ${r.stderr}`);
    const read = (member: string) => {
      const x = spawnSync('tar', ['-xOf', tar, member], { maxBuffer: 64 << 20 });
      if (x.status !== 0) throw new Error(`tar ${member}: ${x.stderr}`);
      return x.stdout.toString('utf8');
    };
    const manifest = JSON.parse(read('manifest.json')) as Array<{ Config: string }>;
    return JSON.parse(read(manifest[0].Config)) as Record<string, unknown>;
  } finally {
    await cleanup();
  }
}

async function generate(c: CorpusCase): Promise<NormalizedImage> {
  const { dir, cleanup } = await tempDir('kiln-gen-ctx-');
  const image = `kiln-corpus/${c.name}:latest`;
  try {
    await copyContext(c, dir);
    const r = await docker(['build', '--no-cache', '--progress', 'plain', '-t', image, ...buildArgFlags(c), dir]);
    if (r.code !== 0) throw new Error(`docker build failed for ${c.name}:\n${r.stderr.split('\n').slice(-25).join('\n')}`);
    const config = await savedConfig(image);
    const out: NormalizedImage = { ...normalizeConfig(config), unusedBuildArgs: parseUnusedBuildArgs(r.stderr + r.stdout) };
    if (c.checks.run?.length) {
      out.files = {};
      for (const argv of c.checks.run) {
        const run = await docker(['run', '--rm', '--network', 'host', '--user', '0:0', '--entrypoint', argv[0], image, ...argv.slice(1)]);
        if (run.code !== 0) throw new Error(`docker run ${argv.join(' ')} in ${c.name}: ${run.stderr}`);
        out.files[checkKey(argv)] = run.stdout;
      }
    }
    return out;
  } finally {
    await docker(['rmi', '-f', image]);
    await cleanup();
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  if (!(await ensureDockerd())) throw new Error('dockerd is not available (needs root and Debian docker.io)');
  await loadBusybox();
  const cases = (await loadCases(corpusDir)).filter((c) => only.length === 0 || only.includes(c.name));
  let failed = 0;
  for (const c of cases) {
    if (c.args.buildkit === false) {
      console.log(`skip   ${c.name} (hand-written: ${c.args.comment ?? 'not buildable by dockerd 20.10'})`);
      continue;
    }
    try {
      const file = path.join(c.dir, 'expected.json');
      let fresh = await generate(c);
      const comments: string[] = [];
      if (c.args.deviations?.length) {
        fresh = applyDeviations(fresh, c.args.deviations);
        for (const d of c.args.deviations) comments.push(`${d.path}: ${d.why}`);
      }
      if (comments.length) comments.unshift('Deviations from dockerd 20.10 (kiln follows current BuildKit), from args.json:');
      const result: NormalizedImage = comments.length ? { comment: comments, ...fresh } : fresh;
      await fs.writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`ok     ${c.name}`);
    } catch (e) {
      failed++;
      console.error(`FAILED ${c.name}: ${(e as Error).message}`);
    }
  }
  if (failed) process.exit(1);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
