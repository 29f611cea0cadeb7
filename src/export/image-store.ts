/** The image store exporter: names the image in kiln's own store (`kiln build -t`). */
import { KilnError } from '../errors.js';
import type { Exporter, ExportSource } from './types.js';

export interface ImageStoreOptions {
  /** Names to point at the image; none leaves it unnamed (reachable by digest while leased). */
  names: string[];
}

/**
 * Points every name at `images[0]`. The image's blobs are already in the store (the build
 * committed them, durably, before exporting): naming is the last step, so a name never
 * points at an incomplete image.
 */
export function imageStoreExporter(options: ImageStoreOptions): Exporter {
  return {
    type: 'image',
    async export(source: ExportSource) {
      const image = source.images[0];
      if (!image || source.images.length !== 1) {
        throw new KilnError(`the image store exporter names one image, and this export has ${source.images.length}`, { hint: 'export the images one at a time' });
      }
      for (const name of options.names) await source.store.setRef(name, image.descriptor);
      return { type: 'image', descriptor: image.descriptor, names: [...options.names] };
    },
  };
}
