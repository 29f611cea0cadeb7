/**
 * Signing keys in cosign's formats.
 *
 * cosign's private key file is a PEM block of type `ENCRYPTED SIGSTORE PRIVATE KEY` (older
 * cosign: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is a JSON envelope (go-securesystemslib's
 * "encrypted" format):
 *
 *   {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<32 bytes, base64>"},
 *    "cipher":{"name":"nacl/secretbox","nonce":"<24 bytes, base64>"},
 *    "ciphertext":"<base64>"}
 *
 * The secretbox key is scrypt(password, salt, N, r, p) → 32 bytes; the ciphertext is NaCl's
 * secretbox (XSalsa20-Poly1305, the 16-byte tag first) of the PKCS#8 DER of the private key.
 * The public key is a PKIX `PUBLIC KEY` PEM. Plain PKCS#8 (`PRIVATE KEY`) and SEC1
 * (`EC PRIVATE KEY`) keys, as `cosign import-key-pair` takes them, load too.
 *
 * Keys kiln signs with: ECDSA P-256 (cosign's default; signatures ECDSA with SHA-256, DER) and
 * RSA of 2048 bits or more (PKCS #1 v1.5 with SHA-256, what cosign does with an RSA key). Other
 * curves and Ed25519 are refused: cosign and skopeo hash them differently.
 *
 * The password never leaves this module: the decrypted key lives only in a KeyObject.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scryptSync, sign, verify, type KeyObject } from 'node:crypto';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { KilnError } from '../errors.js';

export const SIGSTORE_KEY_PEM_TYPE = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_KEY_PEM_TYPE = 'ENCRYPTED COSIGN PRIVATE KEY';

/** go-securesystemslib's scrypt parameters for new keys (its "standard" profile, cosign's). */
export const SCRYPT_PARAMS = { N: 32768, r: 8, p: 1 } as const;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
/** A key file asking for more scrypt work than this (N·r, 256 MiB of memory) is refused. */
const MAX_SCRYPT_COST = 1 << 21;

export type KeyAlgorithm = 'ecdsa-p256-sha256' | 'rsa-pkcs1v15-sha256';

/** A private key ready to sign with: the key, its public half, and how it signs. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  algorithm: KeyAlgorithm;
  /** The public key as a PKIX PEM ("-----BEGIN PUBLIC KEY-----"). */
  publicPem: string;
}

/** A public key to verify with. */
export interface VerificationKey {
  publicKey: KeyObject;
  algorithm: KeyAlgorithm;
  publicPem: string;
}

interface Envelope {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

interface PemBlock {
  type: string;
  body: Buffer;
}

/** The first PEM block in `text`, undefined when there is none. */
export function readPem(text: string): PemBlock | undefined {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) return undefined;
  const b64 = m[2].split(/\r?\n/).filter((l) => l.trim() !== '' && !l.includes(':')).join('');
  return { type: m[1], body: Buffer.from(b64, 'base64') };
}

/** A PEM block as Go's pem.EncodeToMemory writes it: 64-character lines, a final newline. */
export function writePem(type: string, body: Buffer): string {
  const b64 = body.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

function secretboxKey(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  return scryptSync(Buffer.from(password, 'utf8'), salt, 32, { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r * params.p + (1 << 20) });
}

/** The encrypted envelope (JSON bytes) of `der` under `password`, fields in cosign's order. */
function encrypt(der: Buffer, password: string): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = secretboxKey(password, salt, SCRYPT_PARAMS);
  const sealed = xsalsa20poly1305(key, nonce).encrypt(der);
  key.fill(0);
  const envelope: Envelope = {
    kdf: { name: 'scrypt', params: { N: SCRYPT_PARAMS.N, r: SCRYPT_PARAMS.r, p: SCRYPT_PARAMS.p }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return Buffer.from(JSON.stringify(envelope));
}

function malformed(where: string, why: string): KilnError {
  return new KilnError(`${where} is not a cosign private key: ${why}`, {
    code: 'invalid',
    hint: 'give a key written by kiln generate-key-pair or cosign generate-key-pair, or a PKCS#8 / EC PEM private key',
  });
}

function decrypt(body: Buffer, password: string, where: string): Buffer {
  let env: Envelope;
  try {
    env = JSON.parse(body.toString('utf8')) as Envelope;
  } catch {
    throw malformed(where, 'its body is not the JSON envelope (kdf, cipher, ciphertext)');
  }
  if (env?.kdf?.name !== 'scrypt') throw malformed(where, `key derivation ${JSON.stringify(env?.kdf?.name)} is not scrypt`);
  if (env.cipher?.name !== 'nacl/secretbox') throw malformed(where, `cipher ${JSON.stringify(env.cipher?.name)} is not nacl/secretbox`);
  const { N, r, p } = env.kdf.params ?? ({} as Envelope['kdf']['params']);
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0) || (N & (N - 1)) !== 0 || N < 2) throw malformed(where, 'its scrypt parameters (N, r, p) are not positive integers with N a power of two');
  if (N * r * p > MAX_SCRYPT_COST) throw malformed(where, `its scrypt parameters (N=${N}, r=${r}, p=${p}) ask for more than 256 MiB of work`);
  const salt = Buffer.from(String(env.kdf.salt ?? ''), 'base64');
  const nonce = Buffer.from(String(env.cipher.nonce ?? ''), 'base64');
  const sealed = Buffer.from(String(env.ciphertext ?? ''), 'base64');
  if (salt.length === 0) throw malformed(where, 'the salt is missing');
  if (nonce.length !== NONCE_BYTES) throw malformed(where, `the nonce has ${nonce.length} bytes, not ${NONCE_BYTES}`);
  if (sealed.length <= 16) throw malformed(where, 'the ciphertext is missing');
  const key = secretboxKey(password, salt, { N, r, p });
  try {
    return Buffer.from(xsalsa20poly1305(key, nonce).decrypt(sealed));
  } catch {
    throw new KilnError(`wrong password for ${where}`, {
      code: 'denied',
      hint: 'the password (KILN_PASSWORD, COSIGN_PASSWORD or the prompt) does not decrypt this key; give the one it was created with',
    });
  } finally {
    key.fill(0);
  }
}

/** How `key` signs, or a KilnError for a kind of key kiln does not sign with. */
function algorithmOf(key: KeyObject, where: string): KeyAlgorithm {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256-sha256';
    throw new KilnError(`${where} is an ECDSA key on curve ${curve ?? 'unknown'}; kiln signs with P-256 keys (cosign's default)`, {
      code: 'unsupported',
      hint: 'make a P-256 key: kiln generate-key-pair',
    });
  }
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits >= 2048 && bits <= 4096) return 'rsa-pkcs1v15-sha256';
    throw new KilnError(`${where} is an RSA key of ${bits} bits; cosign accepts 2048 to 4096`, { code: 'unsupported', hint: 'make a P-256 key: kiln generate-key-pair' });
  }
  throw new KilnError(`${where} is a${type === 'ed25519' ? 'n Ed25519' : ` ${type ?? 'unknown'}`} key; kiln signs with ECDSA P-256 (or RSA) keys`, {
    code: 'unsupported',
    hint: 'make a P-256 key: kiln generate-key-pair',
  });
}

function publicPemOf(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * A new ECDSA P-256 key pair as cosign writes it: the private key encrypted under `password`
 * (`ENCRYPTED SIGSTORE PRIVATE KEY`), the public key as a PKIX PEM.
 */
export function generateKeyPair(password: string): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    return { privatePem: writePem(SIGSTORE_KEY_PEM_TYPE, encrypt(der, password)), publicPem: publicPemOf(publicKey) };
  } finally {
    der.fill(0);
  }
}

/** Whether loading this PEM text needs a password (a cosign encrypted key). */
export function keyNeedsPassword(pem: string): boolean {
  const block = readPem(pem);
  return block?.type === SIGSTORE_KEY_PEM_TYPE || block?.type === COSIGN_KEY_PEM_TYPE;
}

/**
 * The private key in `pem`: cosign's encrypted format (either PEM type; `password` decrypts
 * it), or a plain PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`.
 * `where` names the key in errors (a file name).
 */
export function loadPrivateKey(pem: string, password: string | undefined, where = 'the private key'): SigningKey {
  const block = readPem(pem);
  if (!block) throw malformed(where, 'no PEM block (-----BEGIN …-----) in it');
  let privateKey: KeyObject;
  if (block.type === SIGSTORE_KEY_PEM_TYPE || block.type === COSIGN_KEY_PEM_TYPE) {
    if (password === undefined) {
      throw new KilnError(`${where} is encrypted and no password was given`, { code: 'invalid', hint: 'set KILN_PASSWORD (or COSIGN_PASSWORD), or run in a terminal to be asked' });
    }
    const der = decrypt(block.body, password, where);
    try {
      privateKey = parseDer(der, where);
    } finally {
      der.fill(0);
    }
  } else if (block.type === 'PRIVATE KEY' || block.type === 'EC PRIVATE KEY' || block.type === 'RSA PRIVATE KEY') {
    const type = block.type === 'PRIVATE KEY' ? 'pkcs8' : block.type === 'EC PRIVATE KEY' ? 'sec1' : 'pkcs1';
    try {
      privateKey = createPrivateKey({ key: block.body, format: 'der', type });
    } catch {
      throw malformed(where, `its ${block.type} block does not parse`);
    }
  } else if (block.type === 'PUBLIC KEY') {
    throw new KilnError(`${where} is a public key; signing needs the private key`, { code: 'invalid', hint: 'give the .key file (kiln verify takes the .pub)' });
  } else {
    throw malformed(where, `PEM type "${block.type}" is not one kiln reads`);
  }
  const algorithm = algorithmOf(privateKey, where);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, algorithm, publicPem: publicPemOf(publicKey) };
}

/** PKCS#8 as cosign encrypts it; SEC1 as some older tools did (cosign itself refuses those). */
function parseDer(der: Buffer, where: string): KeyObject {
  for (const type of ['pkcs8', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: der, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  throw malformed(where, 'the decrypted key is neither PKCS#8 nor an EC private key');
}

/** The public key in `pem` (PKIX `PUBLIC KEY`; a private key or certificate gives its public half). */
export function loadPublicKey(pem: string, where = 'the public key'): VerificationKey {
  const block = readPem(pem);
  if (!block) throw new KilnError(`${where} is not a PEM public key: no -----BEGIN PUBLIC KEY----- block`, { code: 'invalid', hint: 'give the .pub file kiln (or cosign) generate-key-pair wrote' });
  if (block.type === SIGSTORE_KEY_PEM_TYPE || block.type === COSIGN_KEY_PEM_TYPE) {
    throw new KilnError(`${where} is an encrypted private key; verification takes the public key`, { code: 'invalid', hint: 'give the .pub file written beside it' });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch {
    throw new KilnError(`${where}: its ${block.type} block is not a public key kiln can read`, { code: 'invalid', hint: 'give the .pub file kiln (or cosign) generate-key-pair wrote' });
  }
  return { publicKey, algorithm: algorithmOf(publicKey, where), publicPem: publicPemOf(publicKey) };
}

/** The signature of `data` (DER for ECDSA, PKCS #1 v1.5 for RSA), SHA-256. */
export function signBytes(key: SigningKey, data: Buffer): Buffer {
  return sign('sha256', data, key.privateKey);
}

/** Whether `signature` is `key`'s signature of `data`. */
export function verifyBytes(key: VerificationKey | SigningKey, data: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', data, key.publicKey, signature);
  } catch {
    return false; // a signature that is not even DER
  }
}
