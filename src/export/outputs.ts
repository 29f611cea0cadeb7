/**
 * What each `-o` output (export/output-spec.ts) becomes: an Exporter, with the output's
 * conversion (compression, media types, annotations; export/convert.ts) and names bound.
 */
import { KilnError } from '../errors.js';
import { normalizeTagName } from '../oci/reference.js';
import { convertImage, persistConverted, type ConvertOptions } from './convert.js';
import { dockerArchiveExporter } from './docker-archive.js';
import { dockerEngineExporter } from './docker-engine.js';
import { platformManifests } from './filesystem.js';
import { imageStoreExporter } from './image-store.js';
import { localExporter } from './local.js';
import { ociArchiveExporter } from './oci-archive.js';
import type { AnnotationSpec, OutputSpec } from './output-spec.js';
import { tarExporter } from './tar.js';
import type { ExportContext, ExportDestination, Exporter, ExportSource } from './types.js';

export interface OutputDeps {
  /** The build's -t names: the default names of image, registry, oci and docker outputs. */
  tags: string[];
  /** A registry exporter pushing to `names`. */
  registry: (names: string[]) => Exporter;
  /** --annotation values, added to every image output's own. */
  annotations?: AnnotationSpec[];
  /** The stream `dest=-` writes to (default process.stdout). */
  stdout?: NodeJS.WritableStream & { isTTY?: boolean };
}

function convertOptions(spec: OutputSpec, extra: AnnotationSpec[]): ConvertOptions {
  return { compression: spec.compression, ociMediatypes: spec.ociMediatypes, annotations: [...extra, ...spec.annotations] };
}

function needsConversion(c: ConvertOptions): boolean {
  return c.compression !== undefined || c.ociMediatypes !== undefined || (c.annotations?.length ?? 0) > 0;
}

/** `inner` given the image converted as `convert` says (its new documents put into the store) and named `names`. */
function converting(inner: Exporter, convert: ConvertOptions, names: string[] | undefined): Exporter {
  return {
    type: inner.type,
    async export(source: ExportSource, context?: ExportContext) {
      const images = [];
      for (const image of source.images) {
        const descriptor = needsConversion(convert) ? await persistConverted(source.store, await convertImage(source.store, image.descriptor, convert)) : image.descriptor;
        images.push({ descriptor, names: names ?? image.names });
      }
      return inner.export({ ...source, images }, context);
    },
  };
}

/** The docker archive format holds one platform per image (BuildKit's docker exporter says the same). */
function onePlatform(inner: Exporter): Exporter {
  return {
    type: inner.type,
    async export(source: ExportSource, context?: ExportContext) {
      const image = source.images[0];
      const platforms = image ? await platformManifests(source.store, image.descriptor) : undefined;
      if (platforms) {
        throw new KilnError(`type=docker writes one platform per image, and this build made ${platforms.length} (${platforms.map((p) => p.dir.replace(/_/g, '/')).join(', ')})`, {
          code: 'unsupported',
          hint: 'write the index with -o type=oci,dest=FILE, push it (--push), or build one platform',
        });
      }
      return inner.export(source, context);
    },
  };
}

/** The exporters of `specs`, in order. A stdout destination is refused on a terminal, and may be used once. */
export function outputExporters(specs: OutputSpec[], deps: OutputDeps): Exporter[] {
  const stdout = deps.stdout ?? process.stdout;
  const toStdout = specs.filter((s) => s.dest === '-');
  if (toStdout.length > 1) throw new KilnError('only one output can go to stdout (dest=-)', { code: 'invalid', hint: 'write the others to files: dest=FILE' });
  if (toStdout.length === 1 && stdout.isTTY) {
    throw new KilnError(`refusing to write the ${toStdout[0].type} archive to a terminal (dest=-)`, { code: 'invalid', hint: 'redirect stdout to a file or a pipe (> out.tar, | tar t), or write dest=FILE' });
  }
  const tags = deps.tags.map((t) => normalizeTagName(t));
  return specs.map((spec): Exporter => {
    const dest: ExportDestination | undefined = spec.dest === '-' ? stdout : spec.dest;
    const convert = convertOptions(spec, deps.annotations ?? []);
    const names = spec.names?.map((n) => normalizeTagName(n));
    switch (spec.type) {
      case 'image':
      case 'registry': {
        const to = names ?? tags;
        if (spec.push) {
          if (to.length === 0) throw new KilnError(`-o type=${spec.type}: nothing to push to`, { code: 'invalid', hint: 'add name=REGISTRY/REPOSITORY:TAG, or -t' });
          // what a registry gets is compressed (gzip unless the output says otherwise)
          return converting(deps.registry(to), { ...convert, compression: convert.compression ?? { compression: 'gzip' } }, to);
        }
        return converting(imageStoreExporter({ names: to }), convert, to);
      }
      case 'oci':
        // the archive converts as it writes (index-descriptor annotations land in its index.json)
        return converting(ociArchiveExporter({ dest: dest!, tar: spec.tar, convert }), {}, names);
      case 'docker':
        // a docker archive is made from the config and layers alone: media types, compression
        // and annotations have no place in it (output-spec.ts refuses them for type=docker)
        // without dest: the engine (--load), which takes an index only into a containerd image store
        return dest === undefined ? converting(dockerEngineExporter(), {}, names) : onePlatform(converting(dockerArchiveExporter({ dest }), {}, names));
      case 'local':
        return localExporter({ dest: spec.dest! });
      case 'tar':
        return tarExporter({ dest: dest! });
    }
  });
}
