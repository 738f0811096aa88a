/**
 * OpenSSH signatures (SSHSIG, OpenSSH PROTOCOL.sshsig), verified without I/O: the approval gate runs
 * this inside the workflow sandbox, and the CLI and `audit verify` run the same code. What `ssh-keygen
 * -Y sign` writes, this reads; what this accepts, `ssh-keygen -Y verify` accepts too.
 *
 *   #define MAGIC_PREAMBLE "SSHSIG"
 *   byte[6] MAGIC_PREAMBLE; uint32 SIG_VERSION (1); string publickey; string namespace;
 *   string reserved; string hash_algorithm ("sha256" | "sha512"); string signature
 *   signed data = MAGIC_PREAMBLE || string(namespace) || string(reserved) || string(hash_algorithm) || string(H(message))
 *
 * Key types: ssh-ed25519 (RFC 8709) and ecdsa-sha2-nistp256 (RFC 5656). Every other type is refused
 * with its name. Every length is checked against what is left before it is read: hostile input
 * (truncated, oversize, wrong magic) is refused with a reason, never thrown past the caller.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { base64Decode, base64Encode } from './base64.ts';
import { sshFingerprint } from './ssh-key.ts';

/** The namespace every approval signature is made in (`ssh-keygen -Y sign -n factory-approval`). */
export const APPROVAL_NAMESPACE = 'factory-approval';
export const SSH_KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256'] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

export const SSHSIG_LIMITS = {
  /** An armored Ed25519 signature is ~300 characters, ECDSA P-256 ~400: 2 KiB leaves room for line endings. */
  armored: 2_048,
  /** `<type> <base64> <comment>` of a supported key. */
  publicKeyLine: 512,
} as const;

const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';
const MAGIC = new TextEncoder().encode('SSHSIG');

export interface SshPublicKey {
  type: SshKeyType;
  /** The wire blob (RFC 4253 §6.6): what the fingerprint is taken over. */
  blob: Uint8Array;
  /** The raw key: 32 bytes (Ed25519) or a 65-byte uncompressed point (P-256). */
  raw: Uint8Array;
  /** `SHA256:…`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** `<type> <base64>`, without comment: one key, one line. */
  line: string;
}

export interface SshSignature {
  publicKey: SshPublicKey;
  namespace: string;
  hashAlgorithm: 'sha256' | 'sha512';
  /** The signature algorithm named inside the signature blob, and its bytes. */
  algorithm: string;
  signature: Uint8Array;
  /** The SSHSIG blob whole (what the armor carried). */
  blob: Uint8Array;
}

export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };
const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

class Reader {
  private at = 0;
  constructor(private readonly bytes: Uint8Array) {}
  get left(): number {
    return this.bytes.length - this.at;
  }
  take(n: number): Uint8Array {
    if (n > this.left) throw new ParseError(`truncated: ${n} bytes wanted, ${this.left} left`);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u32(): number {
    const b = this.take(4);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }
  string(): Uint8Array {
    return this.take(this.u32());
  }
  text(): string {
    const b = this.string();
    if (b.some((c) => c < 0x20 || c > 0x7e)) throw new ParseError('a name holds bytes that are not printable ASCII');
    return new TextDecoder().decode(b);
  }
}

class ParseError extends Error {}

/** uint32 length + bytes: the SSH wire string. */
export function wireString(bytes: Uint8Array | string): Uint8Array {
  const body = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads a public key's wire blob: only the supported types, with their exact lengths. */
export function readPublicKeyBlob(blob: Uint8Array): Result<SshPublicKey> {
  try {
    const r = new Reader(blob);
    const type = r.text();
    let raw: Uint8Array;
    if (type === 'ssh-ed25519') {
      raw = r.string();
      if (raw.length !== 32) return fail(`an ssh-ed25519 key is 32 bytes, this one ${raw.length}`);
    } else if (type === 'ecdsa-sha2-nistp256') {
      if (r.text() !== 'nistp256') return fail('an ecdsa-sha2-nistp256 key names the curve nistp256');
      raw = r.string();
      if (raw.length !== 65 || raw[0] !== 4) return fail('an ecdsa-sha2-nistp256 key is a 65-byte uncompressed point');
      try {
        p256.Point.fromBytes(raw).assertValidity();
      } catch {
        return fail('the ecdsa-sha2-nistp256 key is not a point on the curve');
      }
    } else {
      return fail(`key type "${type.slice(0, 40)}" is not accepted (accepted: ${SSH_KEY_TYPES.join(', ')})`);
    }
    if (r.left !== 0) return fail(`${r.left} bytes after the ${type} key`);
    const line = `${type} ${base64Encode(blob)}`;
    return { ok: true, value: { type, blob: blob.slice(), raw: raw.slice(), fingerprint: sshFingerprint(blob), line } };
  } catch (err) {
    if (err instanceof ParseError) return fail(`public key: ${err.message}`);
    throw err;
  }
}

/** `ssh-ed25519 AAAA… comment` (an authorized_keys / allowed_signers key): the type, the key, its fingerprint. */
export function parsePublicKeyLine(line: string): Result<SshPublicKey> {
  if (line.length > SSHSIG_LIMITS.publicKeyLine) return fail(`a public key line is at most ${SSHSIG_LIMITS.publicKeyLine} characters`);
  const m = /^([A-Za-z0-9@._-]{1,64}) ([A-Za-z0-9+/]+={0,2})(?: [\x20-\x7e]*)?$/.exec(line.trim());
  if (!m) return fail('not an OpenSSH public key line ("<type> <base64> [comment]")');
  const [, type, b64] = m;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type!)) return fail(`key type "${type}" is not accepted (accepted: ${SSH_KEY_TYPES.join(', ')})`);
  const blob = base64Decode(b64!);
  if (!blob) return fail('the key is not valid base64');
  const key = readPublicKeyBlob(blob);
  if (key.ok && key.value.type !== type) return fail(`the line says ${type}, the key inside is ${key.value.type}`);
  return key;
}

/** Reads an armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`): structure only, no verification. */
export function parseSshSig(armored: string): Result<SshSignature> {
  if (typeof armored !== 'string') return fail('the signature is not text');
  if (armored.length > SSHSIG_LIMITS.armored) return fail(`the signature is longer than ${SSHSIG_LIMITS.armored} characters`);
  const text = armored.replace(/\r\n/g, '\n').trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) return fail(`the signature is not armored (${BEGIN} … ${END})`);
  const body = text.slice(BEGIN.length, text.length - END.length).replace(/\n/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) return fail('the signature armor holds characters that are not base64');
  const blob = base64Decode(body);
  if (!blob) return fail('the signature armor is not valid base64');
  try {
    const r = new Reader(blob);
    const magic = r.take(MAGIC.length);
    if (!magic.every((b, i) => b === MAGIC[i])) return fail('not an SSH signature (magic is not "SSHSIG")');
    const version = r.u32();
    if (version !== 1) return fail(`SSHSIG version ${version} is not supported (1 is)`);
    const key = readPublicKeyBlob(r.string());
    if (!key.ok) return key;
    const namespace = r.text();
    const reserved = r.string();
    if (reserved.length !== 0) return fail('the reserved field is not empty');
    const hashAlgorithm = r.text();
    if (hashAlgorithm !== 'sha256' && hashAlgorithm !== 'sha512') return fail(`hash algorithm "${hashAlgorithm.slice(0, 20)}" is not sha256 or sha512`);
    const sig = new Reader(r.string());
    if (r.left !== 0) return fail(`${r.left} bytes after the signature`);
    const algorithm = sig.text();
    const signature = sig.string();
    if (sig.left !== 0) return fail(`${sig.left} bytes after the signature value`);
    return { ok: true, value: { publicKey: key.value, namespace, hashAlgorithm, algorithm, signature: signature.slice(), blob } };
  } catch (err) {
    if (err instanceof ParseError) return fail(`signature: ${err.message}`);
    throw err;
  }
}

/** The bytes an SSHSIG signs over `message` (PROTOCOL.sshsig). */
export function signedData(namespace: string, hashAlgorithm: 'sha256' | 'sha512', message: Uint8Array): Uint8Array {
  const h = hashAlgorithm === 'sha512' ? sha512(message) : sha256(message);
  return concat(MAGIC, wireString(namespace), wireString(new Uint8Array(0)), wireString(hashAlgorithm), wireString(h));
}

/** mpint (RFC 4251 §5) → 32 big-endian bytes, or undefined when it does not fit. */
function mpint32(b: Uint8Array): Uint8Array | undefined {
  let v = b;
  if (v.length > 0 && v[0]! & 0x80) return undefined; // negative
  while (v.length > 32 && v[0] === 0) v = v.subarray(1);
  if (v.length > 32) return undefined;
  const out = new Uint8Array(32);
  out.set(v, 32 - v.length);
  return out;
}

/**
 * Verifies an armored SSHSIG over `message` in `namespace`: structure, namespace, then the signature by
 * the key the signature names. The caller decides whether that key is one it trusts.
 */
export function verifySshSig(armored: string, message: Uint8Array | string, namespace = APPROVAL_NAMESPACE): Result<SshSignature> {
  const parsed = parseSshSig(armored);
  if (!parsed.ok) return parsed;
  const sig = parsed.value;
  if (sig.namespace !== namespace) return fail(`the signature is for the namespace "${sig.namespace.slice(0, 64)}", not "${namespace}"`);
  const data = signedData(sig.namespace, sig.hashAlgorithm, typeof message === 'string' ? new TextEncoder().encode(message) : message);
  const key = sig.publicKey;
  let valid = false;
  try {
    if (key.type === 'ssh-ed25519') {
      if (sig.algorithm !== 'ssh-ed25519' || sig.signature.length !== 64) return fail(`an ssh-ed25519 key's signature is ssh-ed25519, 64 bytes`);
      valid = ed25519.verify(sig.signature, data, key.raw);
    } else {
      if (sig.algorithm !== 'ecdsa-sha2-nistp256') return fail('an ecdsa-sha2-nistp256 key signs with ecdsa-sha2-nistp256');
      const rs = new Reader(sig.signature);
      const r = mpint32(rs.string());
      const s = mpint32(rs.string());
      if (!r || !s || rs.left !== 0) return fail('the ECDSA signature value is malformed');
      valid = p256.verify(concat(r, s), data, key.raw, { prehash: true, lowS: false });
    }
  } catch (err) {
    if (err instanceof ParseError) return fail(`signature: ${err.message}`);
    valid = false;
  }
  return valid ? parsed : fail(`the signature does not verify over the statement with the key it names (${key.fingerprint})`);
}
