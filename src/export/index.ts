/**
 * Sinks: where a build result or a stored image goes. Every exporter implements the
 * interface in types.ts. `-o` outputs are parsed by output-spec.ts and made exporters by
 * outputs.ts; convert.ts gives an image the compression, media types and annotations an
 * output asks for.
 */
export type { Exporter, ExportCompression, ExportContext, ExportDestination, ExportImage, ExportResult, ExportSource, MountedFilesystem } from './types.js';
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
export { parseOutput, parseAnnotationFlag, OUTPUT_TYPES, type OutputSpec, type OutputType, type AnnotationSpec, type AnnotationTarget } from './output-spec.js';
export { outputExporters, type OutputDeps } from './outputs.js';
export { convertImage, persistConverted, type ConvertOptions, type ConvertedImage } from './convert.js';
export { dockerEngineExporter, dockerEndpoint, type DockerEngineOptions } from './docker-engine.js';
export { platformManifests, type PlatformManifest } from './filesystem.js';
