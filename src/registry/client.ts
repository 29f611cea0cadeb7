/**
 * The distribution API client. (Being written: the registry-client slice of #10.)
 */
import { KilnError } from '../errors.js';
import { parseCanonicalReference, type CanonicalReference } from '../oci/reference.js';
import type { ClientOptions, RemoteRepository } from './types.js';

export class RegistryClient {
  constructor(readonly options: ClientOptions = {}) {}

  /** The repository a reference names (its tag and digest are ignored). */
  repository(ref: CanonicalReference | string): RemoteRepository {
    const r = typeof ref === 'string' ? parseCanonicalReference(ref) : ref;
    throw new KilnError(`registry access is not written yet (${r.repository})`);
  }

  /** Checks that `host` answers the distribution API with the stored credentials (kiln login). */
  async ping(host: string): Promise<void> {
    throw new KilnError(`registry access is not written yet (${host})`);
  }
}
