/**
 * The one numeric rule of the factory, shared with the Python trainer and evaluator
 * (trainers/common.py `parse_number`): a cell is a number when it is a plain decimal literal,
 * ASCII only, with no surrounding space, and finite as an IEEE double. Everything else is refused
 * with a reason code. test/vectors/numbers.json lists cells and verdicts; both implementations are
 * checked against every vector, so they cannot drift apart.
 */

/** ASCII digits only ([0-9], not \d): Python's \d and float() accept other scripts' digits. */
export const DECIMAL_LITERAL = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

export const NUMBER_REFUSALS = ['empty', 'overflow', 'whitespace', 'hexadecimal', 'not-finite', 'digit-separator', 'not-decimal'] as const;
export type NumberRefusal = (typeof NUMBER_REFUSALS)[number];

export type NumberVerdict = { ok: true; value: number } | { ok: false; reason: NumberRefusal };

/** The reasons are checked in this order; the first that applies is the one reported. */
export function parseNumber(cell: string): NumberVerdict {
  if (cell === '') return { ok: false, reason: 'empty' };
  if (DECIMAL_LITERAL.test(cell)) {
    const value = Number(cell);
    return Number.isFinite(value) ? { ok: true, value } : { ok: false, reason: 'overflow' };
  }
  if (/^[ \t\r\n]|[ \t\r\n]$/.test(cell)) return { ok: false, reason: 'whitespace' };
  if (/^[+-]?0[xX]/.test(cell)) return { ok: false, reason: 'hexadecimal' };
  if (/^[+-]?(inf|infinity|nan)$/i.test(cell)) return { ok: false, reason: 'not-finite' };
  if (cell.includes('_')) return { ok: false, reason: 'digit-separator' };
  return { ok: false, reason: 'not-decimal' };
}
