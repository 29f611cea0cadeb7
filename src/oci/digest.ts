import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { KilnError } from '../errors.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** "sha256:<hex>" of the bytes (strings are hashed as UTF-8). */
export function digestOf(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/** A full sha256 digest, "sha256:" + 64 lowercase hex digits. */
export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** The hex part of a "sha256:<hex>" digest. Throws (programming error) on anything else. */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new Error(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return digest.slice('sha256:'.length);
}

/**
 * A passthrough stream that hashes and counts what flows through it.
 * After 'finish'/'end', `digest()` and `size` describe the bytes seen.
 */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  private final?: string;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  /** "sha256:<hex>" of everything written so far; call once the data has all passed. */
  digest(): string {
    if (this.final === undefined) this.final = `sha256:${this.hash.digest('hex')}`;
    return this.final;
  }
}

/**
 * A passthrough stream that errors at its end, with `mismatch(actual)`, when the sha256 of the
 * bytes that passed is not `expected`: reads that are verified as they stream.
 */
export function verifyingStream(expected: string, mismatch: (actual: string) => Error): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      const actual = `sha256:${hash.digest('hex')}`;
      cb(actual === expected ? null : mismatch(actual));
    },
  });
}

/** Incremental sha256 for code that sees the bytes itself. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** Content that was to have one digest has another: callers tell it by its class and read both digests. */
export class DigestMismatchError extends KilnError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what: string,
  ) {
    super(`digest mismatch for ${what}: expected ${expected}, got ${actual}`, {
      hint: 'the content was corrupted or altered in transit; fetch or build it again',
    });
  }
}
