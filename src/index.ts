/**
 * kiln's library API: parse, check, plan and build; list, inspect, remove, save and load
 * images; run them. Everything the CLI does goes through these functions (src/cli/ imports
 * only the modules re-exported here, see eslint.config.js); the CLI adds argument parsing and
 * printing. Conformance tools (the OCI schema validator in src/oci/schema.ts) are not part of
 * it: they need devDependencies and files the package does not ship.
 */
export { KilnError, isKilnError, errorCode, hasCode, retryable, type ErrorCode, type KilnErrorOptions, type SourceLocation } from './errors.js';
export { kilnPaths, type KilnPaths } from './paths.js';
export { resolveRoot } from './config.js';

// Dockerfile: parse, dump, expand, check
export {
  parseDockerfile,
  dumpParseTree,
  expandWord,
  expandWords,
  ShellLexer,
  type Dockerfile,
  type Instruction,
  type Heredoc,
  type Directives,
  type ParseWarning,
  type ShellOptions,
} from './dockerfile/index.js';
export { runChecks, formatFindings, RULES as CHECK_RULES, type CheckFinding, type CheckFormat } from './dockerfile/checks.js';
export { checkContext, type CheckContextOptions, type CheckContextResult } from './check.js';

// plan and build
export { planBuild, type PlanOptions, type BuildPlan, type StagePlan, type ResolvedImage } from './frontend/plan.js';
export { hostPlatform, parsePlatform, tryParsePlatform, formatPlatform, platformMatches } from './oci/platform.js';
export type {
  Vertex,
  ExecVertex,
  FileVertex,
  ImageVertex,
  ScratchVertex,
  MountSpec,
  StepIdentity,
  SourceVertex,
  LocalVertex,
  HttpVertex,
  GitVertex,
} from './graph/types.js';
export { build, readDockerfile, type BuildOptions, type BuildResult, type PlatformImage } from './build.js';
export type { ProgressEvent, StepRecord } from './solver/solver.js';
export { runtimeExecutor, localImages, type Executor, type ImageResolver } from './solver/ops/index.js';
export { StepError, failedVertex, type FailedVertex } from './solver/errors.js';
export { explainSteps, type Explanation } from './solver/explain.js';

// names
export {
  parseReference,
  parseCanonicalReference,
  canonicalName,
  familiarName,
  familiarRepository,
  normalizeName,
  normalizeTagName,
  splitRepoTag,
  type ImageReference,
  type CanonicalReference,
} from './oci/reference.js';

// store, images, archives
export { ContentStore } from './oci/store.js';
export {
  fallbackProvider,
  type BlobInfo,
  type BlobWriter,
  type ContentStoreRoles,
  type GarbageCollector,
  type Ingester,
  type Lease,
  type LeaseManager,
  type NamedDescriptor,
  type Provider,
  type RefStore,
  type StagingIngester,
} from './oci/content.js';
export { walk, reachable, childrenOf, buildIndex, writeIndex, type WalkNode, type WalkOptions, type WalkRoot } from './oci/walk.js';
export { layerVariant } from './oci/layer.js';
export { type LayerCompression } from './oci/variants.js';
export { listImages, removeImages, type ImageSummary } from './images.js';
export { digestOf, isDigest } from './oci/digest.js';
export { loadImage, writeImage, imageSize, imageFrom, layerFrom, type Image, type Layer, type LoadedImage } from './oci/image.js';
export { loadArchive } from './oci/archive.js';
export {
  saveImages,
  exportStoredImage,
  imageStoreExporter,
  ociArchiveExporter,
  dockerArchiveExporter,
  localExporter,
  tarExporter,
  registryExporter,
  type RegistryExportOptions,
  type Exporter,
  type ExportContext,
  type ExportDestination,
  type ExportImage,
  type ExportResult,
  type ExportSource,
  type MountedFilesystem,
} from './export/index.js';
export { importRootfs } from './oci/import.js';
export { MediaType, RefNameAnnotation, type Descriptor, type ImageConfig, type ImageManifest, type ImageIndex, type Platform } from './oci/types.js';

// cache
export { cacheUsage, pruneCache, cacheLimit, type CacheItem, type CacheUsage, type PruneCacheOptions } from './cache/gc.js';

// running
export { runImage, processArgs, type RunImageOptions } from './run.js';
export { runContainer, detectRuntime, resolveUser, parseSshSpec, type RunSpec, type RunResult, type SshSpec } from './exec/index.js';
export { parseVolume, type BindSpec } from './run.js';

// registries: settings and credentials (docker's config.json, credsStore, credHelpers)
export { registryClient, clientOptions, insecureRegistries, checkRegistryHost, isRegistryHost, type RegistrySettingsInput } from './registry/settings.js';
export { dockerCredentials, fixedCredentials, DockerCredentials, dockerConfigDir, registryHostname, configKey, type CredentialLocation } from './registry/credentials.js';
export { pullImage, resolveRemoteImage, remoteConfig, type PullOptions, type PullResult, type RemoteImage } from './registry/pull.js';
export { pushImage, type PushOptions, type PushResult, type PushedBlob } from './registry/push.js';
export { repoDigests } from './registry/sources.js';
export type { TransferEvent, RemoteRepository, PushBlobResult } from './registry/types.js';

// host setup: QEMU user emulation for foreign platforms (kiln setup binfmt)
export { setupBinfmt, ensureBinfmt, debianHandlers, registrationLine, type BinfmtChange, type BinfmtHandler, type SetupBinfmtOptions } from './setup.js';
export { executionProblem, readBinfmtHandler, type RegisteredHandler } from './oci/platform.js';
// imagetools: inspect indexes and combine images into one (store or registry)
export { openImage, inspectImage, formatInspect, inspectJSON, planIndex, createIndex, type ImagetoolsContext, type SourceImage, type Inspected, type CreateOptions, type CreateResult } from './imagetools.js';
// attestations: in-toto statements, SLSA v1 provenance, attestation manifests as BuildKit stores them
export { makeStatement, imagePurl, imageSubjects, statementProblems, STATEMENT_V1, IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, SPDX_PREDICATE, SLSA_PROVENANCE_V1, type Statement, type Subject } from './attest/intoto.js';
export { provenancePredicate, KILN_BUILD_TYPE, type ProvenanceInput } from './attest/provenance.js';
export { attachAttestations, isAttestationEntry, ATTESTATION_PLATFORM } from './attest/attach.js';
export { listAttestations, readStatement, imageAttestations, type ImageAttestations, type AttestationRow, type AttestationsOptions } from './attest/index.js';
export { parseAttestationFlags, type AttestationRequest } from './attest/options.js';

// SBOM (#13): catalogue an image's packages, write SPDX 2.3 / CycloneDX 1.6, read kiln's SPDX back
export { catalogImage } from './sbom/catalog.js';
export { spdxDocument, catalogFromSpdx, type SbomMeta } from './sbom/spdx.js';
export { cyclonedxDocument } from './sbom/cyclonedx.js';
export { sbomImage, sbomDocument, sbomCreated, checkSbomFormat, SBOM_FORMATS, type SbomFormat, type SbomImageOptions, type SbomImageResult } from './sbom/index.js';
export type { Catalog, CatalogPackage, Ecosystem, OsRelease, PackageLocation } from './sbom/types.js';
// secret scan and the build's gate before the push (#13)
export { scanSecrets, formatSecretFindings, secretFindingRows, redact, SECRET_RULES, MAX_FILE_SIZE, type SecretFinding, type SecretSeverity, type ScanSecretsOptions } from './scan/secrets.js';
export { gateExporter, checkImage, gateTable, gateError, prepareGate, parseGateSeverities, pushSigned, pushedForm, type GateOptions, type GateScan, type GateReport, type GatePlatformReport, type GateSeverity, type PrepareGateInput, type SignedPushOptions, type SignedPushResult } from './gate/index.js';
// vulnerability scan: OSV databases, each ecosystem's version order, matching, reports (#13)
export {
  scanImage,
  scanImageSecrets,
  defaultIgnoreFile,
  loadAdvisoryDb,
  AdvisoryDb,
  matchCatalog,
  osvEcosystems,
  countBySeverity,
  readIgnoreFile,
  parseIgnoreFile,
  ignoredBy,
  SEVERITIES,
  advisorySeverity,
  cvssBaseScore,
  compareVersions,
  findingRows,
  summaryLine,
  jsonReport,
  vulnerabilityRun,
  secretsRun,
  sarifLog,
  imageLayers,
  type ScanImageOptions,
  type ScanSecretsImageOptions,
  type ScanReport,
  type Finding,
  type MatchOptions,
  type IgnoreList,
  type Severity,
  type LayerInfo,
  type OsvRecord,
} from './scan/index.js';
// signatures, cosign-compatible: key pairs, the simple-signing payload, the .sig tag image, sign and verify
export { generateKeyPair, loadPrivateKey, loadPublicKey, keyNeedsPassword, SIGSTORE_KEY_PEM_TYPE, COSIGN_KEY_PEM_TYPE, type SigningKey, type VerificationKey, type KeyAlgorithm } from './sign/keys.js';
export { simpleSigningPayload, parsePayload, MalformedPayloadError, SIMPLE_SIGNING_MEDIA_TYPE, COSIGN_SIGNATURE_TYPE, type SimpleSigningPayload } from './sign/payload.js';
export { signatureArtifact, pushSignature, signatureTag, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, type SignatureArtifact, type PushedSignature } from './sign/sign.js';
export {
  signImage,
  verifyImage,
  readKeyFile,
  registryReference,
  cosignRepositoryName,
  VerificationError,
  type SignImageOptions,
  type SignImageResult,
  type SignedManifest,
  type VerifyImageOptions,
  type VerifyImageResult,
  type VerifiedSignature,
  type VerifyFailure,
} from './sign/index.js';
