/**
 * The registry client's shapes: what pull, push, the shared cache and login are written
 * against. The distribution protocol itself (client.ts), credentials (credentials.ts), the
 * settings a kiln root gives them (settings.ts) and what kiln remembers about remote blobs
 * (sources.ts) implement them.
 */
import type { Readable } from 'node:stream';
import type { Provider, Ingester } from '../oci/content.js';
import type { Descriptor } from '../oci/types.js';

/** What a registry host is logged in with (docker's config.json / credential helper shapes). */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's "identitytoken"), exchanged at the token realm. */
  identityToken?: string;
}

/** Where credentials live: docker's config.json, its credsStore and credHelpers. */
export interface CredentialStore {
  /** Credentials for `host` ("localhost:5000", "docker.io"), undefined when none. */
  get(host: string): Promise<Credentials | undefined>;
  store(host: string, credentials: Credentials): Promise<void>;
  /** False when nothing was stored for `host`. */
  erase(host: string): Promise<boolean>;
}

export interface ClientOptions {
  /** Default: none (anonymous). settings.ts gives docker's config. */
  credentials?: CredentialStore;
  /**
   * Hosts (host or host:port) spoken to over plain HTTP (and HTTPS without verification).
   * Loopback addresses (localhost, 127.0.0.0/8, ::1) always may use plain HTTP.
   */
  insecureRegistries?: string[];
  /** Per-host CA and client certificates: <certsDir>/<host[:port]>/{ca.crt,client.cert,client.key}. Default /etc/docker/certs.d. */
  certsDir?: string;
  /** A transfer that receives no byte for this long is aborted (and retried). Default 30 s. */
  stallTimeoutMs?: number;
  /** Attempts per request on 5xx, 429 and dropped connections. Default 5. */
  attempts?: number;
  /** First retry delay; doubles each time (capped at 10 s), Retry-After wins. Default 500 ms. */
  backoffMs?: number;
  signal?: AbortSignal;
}

/** A manifest or index as a registry served it, its digest verified. */
export interface RemoteManifest {
  /** mediaType (from the content or Content-Type), digest and size of `bytes`. */
  descriptor: Descriptor;
  bytes: Buffer;
}

/** Bytes moved so far for one blob. */
export type OnProgress = (bytes: number) => void;

export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

/** One repository on one registry: the distribution API, authenticated and retried. */
export interface RemoteRepository {
  /** Registry host as the user names it ("localhost:5000", "docker.io"). */
  readonly host: string;
  /** Repository path on it ("library/busybox"). */
  readonly name: string;
  /**
   * The manifest or index `reference` (a tag or a digest) names. A digest reference is
   * verified; a schema 1 manifest, an unknown media type or one over 4 MiB is a KilnError.
   */
  getManifest(reference: string): Promise<RemoteManifest>;
  /** The descriptor a tag or digest resolves to, undefined when the registry has none. */
  headManifest(reference: string): Promise<Descriptor | undefined>;
  /**
   * Uploads a manifest under a tag or its digest. One with a `subject` on a registry without
   * the referrers API also updates the referrers tag (sha256-<hex>) index.
   */
  putManifest(reference: string, manifest: { mediaType: string; bytes: Buffer }): Promise<Descriptor>;
  /** The blob's size when the repository has it, undefined when not. */
  statBlob(digest: string): Promise<number | undefined>;
  /** The blob, verified against its digest (the stream errors at its end otherwise), resumed with Range after a drop. */
  openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, options?: { onProgress?: OnProgress }): Readable;
  /** Downloads a blob into `into`; nothing is committed unless it matches its digest and size. */
  fetchBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, into: Pick<Ingester, 'writer'>, options?: { onProgress?: OnProgress }): Promise<void>;
  /**
   * Uploads a blob unless the repository has it: 'exists' after a HEAD found it, 'mounted'
   * when one of `mountFrom` (repositories on the same host) had it, else 'uploaded' (in
   * chunks of `chunkSize` with PATCH when the blob is larger, else one PUT).
   */
  pushBlob(
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    open: () => AsyncIterable<Buffer>,
    options?: { mountFrom?: string[]; chunkSize?: number; onProgress?: OnProgress },
  ): Promise<PushBlobResult>;
  /** Manifests whose subject is `digest` (the referrers API, else the sha256-<hex> tag index). */
  referrers(digest: string, artifactType?: string): Promise<Descriptor[]>;
  listTags(): Promise<string[]>;
  /** This repository's blobs as a Provider (reads verified). */
  provider(): Provider;
}

/** Byte progress of pulls and pushes, for the CLI's progress bars. */
export type TransferEvent =
  | { type: 'transfer-start'; id: string; action: 'pull' | 'push'; total: number }
  | { type: 'transfer-progress'; id: string; current: number; total: number }
  /** how: 'exists' (already there), 'mounted', 'done' */
  | { type: 'transfer-done'; id: string; how: 'exists' | 'mounted' | 'done' | 'cached' }
  | { type: 'transfer-error'; id: string; message: string };
