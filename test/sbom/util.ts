/** Crafted images for the cataloguer's tests: layers of tar entries written into a fresh store. */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import formatsModule from 'ajv-formats';
import { writeImage } from '../../src/oci/image.js';
import { storeTarAsLayer, writeLayer, type LayerEntry } from '../../src/oci/layer.js';
import { tarStreamLib } from '../../src/oci/tar.js';
import { ContentStore } from '../../src/oci/store.js';
import type { Descriptor } from '../../src/oci/types.js';

export { tempDir } from '../oci/util.js';

/** A layer entry: a file (string content), a directory ('dir'), or a symlink ({ link }). */
export type Spec = Record<string, string | Buffer | { link: string } | { hardlink: string } | { mode: number; content: string | Buffer } | 'dir'>;

export function entries(spec: Spec): LayerEntry[] {
  return Object.entries(spec).map(([p, v]): LayerEntry => {
    const base = { path: p.replace(/^\//, ''), uid: 0, gid: 0 };
    if (v === 'dir') return { ...base, type: 'directory', mode: 0o755 };
    if (typeof v === 'string' || Buffer.isBuffer(v)) return { ...base, type: 'file', mode: 0o644, content: Buffer.from(v) };
    if ('link' in v) return { ...base, type: 'symlink', mode: 0o777, linkname: v.link };
    if ('hardlink' in v) return { ...base, type: 'hardlink', mode: 0o644, linkname: v.hardlink.replace(/^\//, '') };
    return { ...base, type: 'file', mode: v.mode, content: Buffer.from(v.content) };
  });
}

/** A store holding one image made of these layers (lowest first), named `name`. */
export async function craftImage(root: string, layers: Array<Spec | Buffer>, name = 'crafted:1'): Promise<{ store: ContentStore; manifest: Descriptor; diffIds: string[] }> {
  const store = await ContentStore.open(root);
  const written = [];
  for (const l of layers) written.push(Buffer.isBuffer(l) ? await storeTarAsLayer(store, () => Readable.from([l])) : await writeLayer(store, entries(l)));
  const { manifestDescriptor } = await writeImage(
    store,
    { config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: written.map((w) => w.diffId) } }, layers: written.map((w) => w.descriptor) },
    [name],
  );
  return { store, manifest: manifestDescriptor, diffIds: written.map((w) => w.diffId) };
}

export const dpkgStanza = (name: string, version: string, extra = ''): string =>
  `Package: ${name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: ${version}\n${extra}Description: ${name}\n the ${name} package\n`;

const conformance = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..', '..', 'shared', 'conformance', 'supplychain');

/** Validators for the official SPDX 2.3 and CycloneDX 1.6 JSON schemas (draft-07, with formats). */
export function schemaValidator(kind: 'spdx' | 'cyclonedx'): (doc: unknown) => string[] {
  // ajv-formats is CommonJS: under NodeNext its default import is module.exports
  type Plugin = typeof formatsModule.default;
  const addFormats: Plugin = (formatsModule as unknown as { default?: Plugin }).default ?? (formatsModule as unknown as Plugin);
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const load = (f: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(conformance, f), 'utf8')) as Record<string, unknown>;
  let validate: ValidateFunction;
  if (kind === 'spdx') validate = ajv.compile(load('spdx-2.3/spdx-schema.json'));
  else {
    ajv.addSchema(load('cyclonedx-1.6/spdx.schema.json'), 'spdx.schema.json');
    ajv.addSchema(load('cyclonedx-1.6/jsf-0.82.schema.json'), 'jsf-0.82.schema.json');
    validate = ajv.compile(load('cyclonedx-1.6/bom-1.6.schema.json'));
  }
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
}

/** A raw tar archive with names exactly as given (adversarial ones included), for layers writeLayer refuses to write. */
export async function rawTar(items: Array<{ name: string; content?: string; type?: 'file' | 'symlink'; linkname?: string }>): Promise<Buffer> {
  const pack = (await tarStreamLib()).pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const i of items) {
    if (i.type === 'symlink') pack.entry({ name: i.name, type: 'symlink', linkname: i.linkname });
    else pack.entry({ name: i.name, mode: 0o644 }, i.content ?? '');
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
