/** Image archives as export destinations: docker-archive and OCI archive tarballs, and their loading. */
export { saveImages, loadArchive, ContainerdImageNameAnnotation, type ArchiveFormat } from '../oci/archive.js';
export { importRootfs, type ImportOptions } from '../oci/import.js';
