/** Control characters, bidi controls and lone surrogates, the set the CLI escapes for terminals. */
const UNSAFE_UNIT =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/y;

/**
 * Text someone else wrote (a failure message, a cancellation reason) made safe to store and show:
 * each unsafe code unit becomes a visible escape (`\x1b`, `\u202e`), and the result is cut to `max`
 * characters with `…` (never inside an escape or a surrogate pair). Only the first part of a huge
 * input is looked at.
 */
export function boundedText(text: string, max: number): string {
  let out = '';
  for (let i = 0; i < text.length;) {
    const code = text.charCodeAt(i);
    UNSAFE_UNIT.lastIndex = i;
    let piece: string;
    let units: number;
    if (UNSAFE_UNIT.test(text)) {
      piece = code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
      units = 1;
    } else {
      // Not unsafe: a BMP character, or a high surrogate followed by its low one (kept together).
      units = code >= 0xd800 && code <= 0xdbff ? 2 : 1;
      piece = text.slice(i, i + units);
    }
    const last = i + units >= text.length;
    // Room for the piece, and for the ellipsis when more follows.
    if (out.length + piece.length + (last ? 0 : 1) > max) return `${out}…`;
    out += piece;
    i += units;
  }
  return out;
}
