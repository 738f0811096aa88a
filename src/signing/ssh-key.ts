import { sha256 } from '@noble/hashes/sha2.js';
import { base64Encode } from './base64.ts';

/**
 * OpenSSH public-key wire form (RFC 4253 §6.6, RFC 8709 for Ed25519): what `ssh-ed25519 AAAA…` lines
 * carry base64-encoded, and what `ssh-keygen -l` fingerprints. Shared by the factory's own key and
 * the principals' keys in the policy pack, so both print fingerprints the way ssh-keygen does.
 */
export function sshString(bytes: Uint8Array | string): Buffer {
  const body = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** The wire blob of an Ed25519 public key (32 raw bytes). */
export function ed25519WireBlob(raw: Uint8Array): Buffer {
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
  return Buffer.concat([sshString('ssh-ed25519'), sshString(raw)]);
}

/** `ssh-ed25519 AAAA… comment`, as in an authorized_keys or allowed_signers line. */
export function ed25519PublicKeyLine(raw: Uint8Array, comment?: string): string {
  return `ssh-ed25519 ${ed25519WireBlob(raw).toString('base64')}${comment ? ` ${comment}` : ''}`;
}

/**
 * `SHA256:<base64 without padding>` of a wire blob: what `ssh-keygen -l -f key.pub` prints. Pure (no
 * node:crypto): the approval gate takes fingerprints inside the workflow sandbox.
 */
export function sshFingerprint(wireBlob: Uint8Array): string {
  return `SHA256:${base64Encode(sha256(wireBlob), { pad: false })}`;
}

/** The 32 raw bytes of an `ssh-ed25519 AAAA… [comment]` line; undefined when the line is not one. */
export function parseEd25519PublicKeyLine(line: string): Buffer | undefined {
  const m = /^ssh-ed25519\s+([A-Za-z0-9+/]+={0,2})(?:\s.*)?$/.exec(line.trim());
  if (!m) return undefined;
  const blob = Buffer.from(m[1]!, 'base64');
  const type = Buffer.from('ssh-ed25519');
  // string "ssh-ed25519" then string <32 bytes>: exactly 4+11+4+32 bytes.
  if (blob.length !== 4 + type.length + 4 + 32 || blob.readUInt32BE(0) !== type.length || !blob.subarray(4, 4 + type.length).equals(type)) return undefined;
  if (blob.readUInt32BE(4 + type.length) !== 32) return undefined;
  return blob.subarray(4 + type.length + 4);
}
