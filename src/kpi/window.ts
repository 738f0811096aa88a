/** Pure parts of the KPIs (unit-tested): the window and percentiles. */

export class KpiInputError extends Error {
  override name = 'KpiInputError';
}

/** The default window of `factory kpi` and of the KPI gauges. */
export const DEFAULT_SINCE = '30d';
const RELATIVE = /^([1-9]\d{0,4})(d|h)$/;
const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * `--since`: a relative window (`30d`, `12h`: days or hours before now) or an ISO date/time
 * (`2026-11-01`, `2026-11-01T09:00:00Z`; a date alone is midnight UTC). Anything else, a start after
 * now, or one before 1970 is refused: the input is the caller's and may be hostile (bounded, no controls).
 */
export function parseSince(text: string, now: Date): Date {
  if (text.length > 40 || /[^\x20-\x7e]/.test(text)) throw new KpiInputError('--since: at most 40 printable characters');
  const rel = RELATIVE.exec(text);
  let since: Date;
  if (rel) since = new Date(now.getTime() - Number(rel[1]) * (rel[2] === 'd' ? 86_400_000 : 3_600_000));
  else if (ISO.test(text)) since = new Date(text.length === 10 ? `${text}T00:00:00Z` : text);
  else throw new KpiInputError(`--since ${text}: an ISO date (2026-11-01, 2026-11-01T09:00:00Z) or a window like 30d or 12h`);
  if (Number.isNaN(since.getTime()) || since.getTime() < 0) throw new KpiInputError(`--since ${text}: not a date`);
  if (!rel) {
    // Date rolls 2026-02-30 over to 2 March: the calendar date written must be one that exists.
    const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
    const day = new Date(Date.UTC(y, m - 1, d));
    if (day.getUTCFullYear() !== y || day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) throw new KpiInputError(`--since ${text}: no such date`);
  }
  if (since.getTime() > now.getTime()) throw new KpiInputError(`--since ${text}: after now (${now.toISOString()})`);
  return since;
}

/**
 * Nearest-rank percentile (p in (0, 1]) of the values: the smallest value with at least p of them at or
 * below it. The same definition as PostgreSQL's `percentile_disc(p)`, which the gateway's p95 uses in
 * SQL: a figure that was measured, never an interpolation. null for no values.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 1)) throw new RangeError(`percentile ${p}: in (0, 1]`);
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(p * sorted.length) - 1]!;
}

/** numerator / denominator, or null when there is nothing to measure. */
export function ratio(numerator: number, denominator: number): number | null {
  return denominator > 0 ? numerator / denominator : null;
}

/** Whether a value meets a goal (null without either). */
export function meets(value: number | null, goal: { op: '>=' | '<='; value: number } | null): boolean | null {
  if (value === null || goal === null) return null;
  return goal.op === '>=' ? value >= goal.value : value <= goal.value;
}
