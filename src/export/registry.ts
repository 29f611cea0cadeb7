/**
 * The registry exporter: pushes the exported image to every name given (`kiln build --push
 * -t REF…`), as registry/push.ts pushes a stored image. Each name gets the same manifest (the
 * push is deterministic), its digest the result's.
 */
import { KilnError } from '../errors.js';
import { pushImage, type PushOptions, type PushResult } from '../registry/push.js';
import type { ExportContext, Exporter, ExportSource } from './types.js';

export interface RegistryExportOptions extends Pick<PushOptions, 'client' | 'progress' | 'warn' | 'concurrency' | 'chunkSize'> {
  /** Where to push: "host/repo:tag" references. Default: the image's names (a build's -t). */
  names?: string[];
  /** Called after each name is pushed (the CLI prints it). */
  onPushed?: (result: PushResult) => void;
}

export function registryExporter(options: RegistryExportOptions): Exporter {
  return {
    type: 'registry',
    async export(source: ExportSource, context?: ExportContext) {
      const image = source.images[0];
      if (!image || source.images.length !== 1) {
        throw new KilnError(`the registry exporter pushes one image, and this export has ${source.images.length}`, { hint: 'push the images one at a time' });
      }
      const names = options.names ?? image.names;
      if (names.length === 0) {
        throw new KilnError('nothing to push to: the image has no name', { code: 'invalid', hint: 'name it with -t REGISTRY/REPOSITORY:TAG' });
      }
      const pushed: PushResult[] = [];
      for (const name of names) {
        const result = await pushImage({
          store: source.store,
          client: options.client,
          source: image.descriptor,
          ref: name,
          progress: options.progress,
          warn: options.warn,
          concurrency: options.concurrency,
          chunkSize: options.chunkSize,
          signal: context?.signal,
        });
        pushed.push(result);
        options.onPushed?.(result);
      }
      return { type: 'registry', descriptor: pushed[0].descriptor, names: pushed.map((p) => p.reference) };
    },
  };
}
