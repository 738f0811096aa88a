import { createHash } from 'node:crypto';

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

/** `SHA256:<base64 without padding>` of a wire blob: what `ssh-keygen -l -f key.pub` prints. */
export function sshFingerprint(wireBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(wireBlob).digest('base64').replace(/=+$/, '')}`;
}
