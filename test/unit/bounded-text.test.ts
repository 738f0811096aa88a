import { describe, expect, it } from 'vitest';
import { boundedText } from '../../src/audit/bounded-text.ts';

describe('boundedText (causes and reasons kept in the audit trail)', () => {
  it('escapes control, bidi and lone-surrogate code units visibly, keeps the rest', () => {
    expect(boundedText('a\u001b[31mb\nc\u202ed\u0000e\ud800f 😀 é', 100)).toBe('a\\x1b[31mb\\x0ac\\u202ed\\x00e\\ud800f 😀 é');
  });

  it('cuts at the bound with an ellipsis, never inside an escape or a surrogate pair', () => {
    expect(boundedText('x'.repeat(10), 10)).toBe('x'.repeat(10));
    expect(boundedText('x'.repeat(11), 10)).toBe(`${'x'.repeat(9)}…`);
    // The escape would end past the room left for the ellipsis: it is left out whole.
    expect(boundedText(`${'x'.repeat(6)}\u001by`, 10)).toBe(`${'x'.repeat(6)}…`);
    expect(boundedText(`${'x'.repeat(7)}😀yz`, 10)).toBe(`${'x'.repeat(7)}😀…`);
    expect(boundedText(`${'x'.repeat(7)}😀y`, 10)).toBe(`${'x'.repeat(7)}😀y`);
    expect(boundedText(`${'x'.repeat(8)}😀y`, 10)).toBe(`${'x'.repeat(8)}…`);
    // The last piece needs no room for an ellipsis.
    expect(boundedText(`${'x'.repeat(6)}\u001b`, 10)).toBe(`${'x'.repeat(6)}\\x1b`);
    const huge = boundedText('\u0007'.repeat(5_000_000), 2_000);
    expect(huge.length).toBeLessThanOrEqual(2_000);
    expect(huge.endsWith('…')).toBe(true);
  });
});
