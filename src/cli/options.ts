import { InvalidArgumentError } from 'commander';

/**
 * A commander argument parser for whole numbers, strict: decimal digits only (no sign, fraction,
 * exponent, hex, blanks or empty string) within [min, max]. `Number('')` is 0 and `Number('1e3')`
 * is 1000, so a loose parse silently bends input; this one refuses it and commander names the
 * option (exit 2).
 */
export function strictInt(min: number, max: number = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(value)}.`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got ${value}.`);
    return n;
  };
}

/** Like strictInt for decimal numbers: digits with at most one decimal point (no sign, exponent or blanks) within [min, max]. */
export function strictDecimal(min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(value)) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${JSON.stringify(value)}.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${value}.`);
    return n;
  };
}
