/**
 * Standard base64 (RFC 4648 §4), pure: workflow code has neither Buffer nor atob. Used for OpenSSH key
 * lines, armored SSH signatures and `SHA256:` fingerprints, where the input is short and bounded.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));

export function base64Encode(bytes: Uint8Array, { pad = true } = {}): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < 4; k++) out += k < chars ? ALPHABET[(n >> (18 - 6 * k)) & 63] : pad ? '=' : '';
  }
  return out;
}

/** Decodes canonical base64 (padding optional); undefined for anything else. */
export function base64Decode(text: string): Uint8Array | undefined {
  const s = text.replace(/=+$/, '');
  if (s.length % 4 === 1 || text.length - s.length > 2) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (const c of s) {
    const v = INDEX.get(c);
    if (v === undefined) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  // Left-over bits must be zero: one text, one byte string.
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
