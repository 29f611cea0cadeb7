/**
 * Sinks: where a build result or a stored image goes. Every exporter implements the
 * interface in types.ts; registry push and `--load` will be two more.
 */
export type { Exporter, ExportContext, ExportDestination, ExportImage, ExportResult, ExportSource, MountedFilesystem } from './types.js';
export { imageStoreExporter, type ImageStoreOptions } from './image-store.js';
export { ociArchiveExporter, type OciArchiveOptions } from './oci-archive.js';
export { dockerArchiveExporter, type DockerArchiveOptions } from './docker-archive.js';
export { localExporter, type LocalExportOptions } from './local.js';
export { tarExporter, type TarExportOptions } from './tar.js';
export { mountImageFilesystem, sharedFilesystem, filesystemEntries } from './filesystem.js';
export { finalizeConfig, type FinalizeOptions, type SolvedStep } from './config.js';
export { saveImages, exportStoredImage, type ArchiveFormat } from './save.js';
export { ContainerdImageNameAnnotation } from '../oci/archive.js';
export { registryExporter, type RegistryExportOptions } from './registry.js';
