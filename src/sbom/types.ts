/**
 * What an image contains, as the cataloguer finds it: the one model the SBOM writers
 * (SPDX, CycloneDX), the attestations, the vulnerability scan and the build's gate share.
 * Plain data, JSON-serialisable.
 */
import type { Platform } from '../oci/types.js';

/**
 * A package's ecosystem, as kiln names it. `osvEcosystem` (in the scan) maps it to OSV's
 * names: deb → "Debian:12" (from the image's os-release), apk → "Alpine:v3.19", npm → "npm",
 * pypi → "PyPI", golang → "Go", maven → "Maven".
 */
export type Ecosystem = 'deb' | 'apk' | 'npm' | 'pypi' | 'golang' | 'maven';

/** Where a package's record was found: which layer of the image, and which file. */
export interface PackageLocation {
  /** Index of the layer in the manifest (0 = the base's first layer). */
  layer: number;
  /** The layer's diff id (uncompressed digest), as in the config's rootfs.diff_ids. */
  diffId: string;
  /** Absolute path inside the image ("/var/lib/dpkg/status", "/app/node_modules/x/package.json"). */
  path: string;
}

export interface CatalogPackage {
  name: string;
  version: string;
  ecosystem: Ecosystem;
  /** Package URL (purl spec), with distro qualifiers for OS packages (pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12). */
  purl: string;
  /** Licences as found: SPDX identifiers or expressions where known, else the text as declared. */
  licenses: string[];
  /** Where it was found; the first is the layer that brought it in (as present in the final image). */
  locations: PackageLocation[];
  /** OS packages: the source package and its version (OSV's Debian advisories name source packages). */
  sourceName?: string;
  sourceVersion?: string;
  /** OS packages: the architecture the package is built for ("amd64", "all"). */
  arch?: string;
  /** Go binaries: the Go toolchain that built the binary ("go1.21.5"); the main module's path for dependencies. */
  goVersion?: string;
  /** Java: the Maven group id (name is "group:artifact"). */
  groupId?: string;
}

/** /etc/os-release of the final image, as far as it says. */
export interface OsRelease {
  /** ID= ("debian", "alpine"). */
  id: string;
  /** VERSION_ID= ("12", "3.19.1"). */
  versionId?: string;
  /** VERSION_CODENAME= ("bookworm"). */
  versionCodename?: string;
  /** PRETTY_NAME=. */
  prettyName?: string;
}

/** Everything the cataloguer found in one platform's image. */
export interface Catalog {
  /** The image manifest catalogued (one platform's). */
  manifestDigest: string;
  platform?: Platform;
  /** The layers, in order (diff ids), so locations can be read without the config. */
  diffIds: string[];
  os?: OsRelease;
  /** Every package present in the final filesystem, sorted by ecosystem, name, version, first path. */
  packages: CatalogPackage[];
}
