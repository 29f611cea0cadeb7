/**
 * The package as a user gets it: `npm pack`, then `npm install ./kiln-<version>.tgz` in an empty
 * project. Its library entry must import with only the runtime dependencies installed (no
 * devDependency, no file outside package.json "files"), and its `kiln` command must run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { haveTool, repoRoot, runCommand, tempDir } from '../helpers.js';

const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
};

let work: { dir: string; cleanup: () => Promise<void> } | undefined;
let project: string;
let installed: string;

before(async () => {
  if (!haveTool('npm')) return;
  // `npm run build` makes the bundle bin/kiln runs; after a bare `tsc` it is missing or stale
  const bundle = path.join(repoRoot, 'dist', 'kiln.cjs');
  const entry = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(bundle) || statSync(entry).mtimeMs > statSync(bundle).mtimeMs) {
    const r = await runCommand(process.execPath, [path.join(repoRoot, 'scripts', 'bundle.mjs')]);
    assert.equal(r.code, 0, `scripts/bundle.mjs failed:\n${r.stdout}\n${r.stderr}`);
  }
  work = await tempDir('kiln-package-');
  // npm's cache and logs stay in the repository user's usual place; everything else in work.dir
  const packed = await runCommand('npm', ['pack', '--pack-destination', work.dir, '--json'], { cwd: repoRoot });
  assert.equal(packed.code, 0, `npm pack failed:\n${packed.stderr}`);
  const [{ filename, files }] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  assert.ok(files.some((f) => f.path === 'dist/kiln.cjs'), 'the bundle is packed');
  assert.ok(!files.some((f) => f.path.startsWith('dist/test/') || f.path.startsWith('src/')), 'tests and sources are not packed');
  project = path.join(work.dir, 'project');
  await fs.mkdir(project);
  await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'kiln-user', version: '1.0.0', private: true }));
  const install = await runCommand('npm', ['install', path.join(work.dir, filename), '--no-audit', '--no-fund', '--prefer-offline'], { cwd: project });
  assert.equal(install.code, 0, `npm install of the tarball failed:\n${install.stderr}`);
  installed = path.join(project, 'node_modules', pkg.name);
});

after(async () => {
  await work?.cleanup();
});

test('the installed library entry imports and works', { skip: !haveTool('npm') && 'npm is not installed' }, async () => {
  const script = `
    const kiln = await import('kiln');
    const df = kiln.parseDockerfile('FROM busybox\\nRUN true\\n');
    console.log(JSON.stringify({
      exports: Object.keys(kiln).sort(),
      dump: kiln.dumpParseTree(df),
      canonical: kiln.canonicalName('busybox'),
      platform: kiln.formatPlatform(kiln.parsePlatform('linux/arm')),
      deep: await import('kiln/dist/src/oci/schema.js').then(() => 'imported', (e) => e.code),
    }));`;
  const r = await runCommand(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
  assert.equal(r.code, 0, `import('kiln') failed in an installed project:\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { exports: string[]; dump: string; canonical: string; platform: string; deep: string };
  for (const name of ['build', 'planBuild', 'ContentStore', 'loadImage', 'listImages', 'removeImages', 'checkContext', 'runImage', 'KilnError']) {
    assert.ok(out.exports.includes(name), `kiln exports ${name}`);
  }
  assert.ok(!out.exports.includes('validateOCI'), 'the OCI schema validator is a test tool, not library API');
  assert.equal(out.dump, '(from "busybox")\n(run "true")\n');
  assert.equal(out.canonical, 'docker.io/library/busybox:latest');
  assert.equal(out.platform, 'linux/arm/v7');
  // package.json "exports": the library is its entry; modules behind it are not API
  assert.equal(out.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
});

test('the installed kiln command runs', { skip: !haveTool('npm') && 'npm is not installed' }, async () => {
  const r = await runCommand(path.join(project, 'node_modules', '.bin', 'kiln'), ['--version'], { cwd: project });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('every module the library entry reaches needs only runtime dependencies', { skip: !haveTool('npm') && 'npm is not installed' }, async () => {
  // import('kiln') proves the static imports; this also covers the lazy import()s (tar-stream...)
  const seen = new Set<string>();
  const bare = new Set<string>();
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await fs.readFile(file, 'utf8');
    // static imports and re-exports (tsc writes one per line), and import('...') with a literal
    const specs = [
      ...text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
      ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1] as string);
    for (const spec of specs) {
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        assert.ok(existsSync(target), `${path.relative(installed, file)} imports ${spec}, which is not in the package`);
        await visit(target);
      } else if (!isBuiltin(spec)) {
        bare.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
      }
    }
  };
  await visit(path.join(installed, 'dist', 'src', 'index.js'));
  await visit(path.join(installed, 'dist', 'src', 'cli', 'main.js'));
  assert.ok(seen.size > 20, `followed the imports (${seen.size} modules)`);
  for (const name of bare) assert.ok(name in pkg.dependencies, `${name} is imported by the library but is not a dependency`);
});
