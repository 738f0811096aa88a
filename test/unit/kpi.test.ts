import { describe, expect, it } from 'vitest';
import { renderKpis } from '../../src/cli/kpi.ts';
import { KPI_IDS, type KpiReport, kpiReportSchema } from '../../src/domain/kpi.ts';
import { KpiInputError, meets, parseSince, percentile, ratio } from '../../src/kpi/window.ts';

const now = new Date('2026-11-27T12:00:00.000Z');

describe('KPI window (--since)', () => {
  it('reads days and hours before now, and ISO dates and date-times', () => {
    expect(parseSince('30d', now).toISOString()).toBe('2026-10-28T12:00:00.000Z');
    expect(parseSince('12h', now).toISOString()).toBe('2026-11-27T00:00:00.000Z');
    expect(parseSince('2026-11-01', now).toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(parseSince('2026-11-01T09:30:00Z', now).toISOString()).toBe('2026-11-01T09:30:00.000Z');
    expect(parseSince('2026-11-01T09:30:00+01:00', now).toISOString()).toBe('2026-11-01T08:30:00.000Z');
  });

  it('refuses what is not a window: junk, zero, control characters, overlong, the future, impossible dates', () => {
    for (const bad of [
      '',
      '0d',
      '30',
      'd',
      '-1d',
      '30w',
      '1e3d',
      'yesterday',
      '2026-11-01\u001b[2J',
      '9'.repeat(41),
      '2027-01-01',
      '2026-02-30',
      '2026-13-01',
      '2026-11-01 09:00',
    ])
      expect(() => parseSince(bad, now), JSON.stringify(bad)).toThrow(KpiInputError);
  });
});

describe('KPI percentiles (nearest rank, as percentile_disc)', () => {
  it('gives a measured value, never an interpolation', () => {
    const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(v, 0.5)).toBe(5);
    expect(percentile(v, 0.95)).toBe(10);
    expect(percentile(v, 0.9)).toBe(9);
    expect(percentile(v, 1)).toBe(10);
    expect(percentile([42], 0.95)).toBe(42);
    expect(percentile([1, 2], 0.5)).toBe(1);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        0.95,
      ),
    ).toBe(95);
    expect(
      percentile(
        Array.from({ length: 101 }, (_, i) => i + 1),
        0.95,
      ),
    ).toBe(96);
  });
  it('is null without values and refuses a p outside (0, 1]', () => {
    expect(percentile([], 0.95)).toBeNull();
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 1.5)).toThrow(RangeError);
  });
  it('ratios are null without a population; goals are met or missed', () => {
    expect(ratio(0, 0)).toBeNull();
    expect(ratio(3, 4)).toBe(0.75);
    expect(meets(null, { op: '>=', value: 1 })).toBeNull();
    expect(meets(1, null)).toBeNull();
    expect(meets(0.75, { op: '>=', value: 1 })).toBe(false);
    expect(meets(800, { op: '<=', value: 900 })).toBe(true);
  });
});

describe('KPI report', () => {
  const report: KpiReport = {
    asOf: now.toISOString(),
    since: '2026-10-28T12:00:00.000Z',
    policyDigest: `sha256:${'a'.repeat(64)}`,
    kpis: Object.fromEntries(
      KPI_IDS.map((id) => [
        id,
        {
          id,
          title: `${id} \u001b[31mred`,
          value: id === 'rollbackTime' ? 1234 : id === 'policyViolations' ? 3 : id === 'auditLogCompleteness' ? null : 0.5,
          unit: id === 'rollbackTime' || id === 'inferenceP95' ? 'ms' : id === 'policyViolations' ? 'count' : 'ratio',
          numerator: 1,
          denominator: 2,
          goal: { op: '>=', value: 1, source: 'test' },
          met: false,
          detail: { missing: 1, zero: 0 },
          ...(id === 'auditLogCompleteness' ? { note: 'not checked' } : {}),
        },
      ]),
    ) as unknown as KpiReport['kpis'],
  };
  it('has every KPI, and the schema refuses a report without one', () => {
    expect(kpiReportSchema.parse(report)).toEqual(report);
    const { inferenceP95: _, ...rest } = report.kpis;
    expect(() => kpiReportSchema.parse({ ...report, kpis: rest })).toThrow();
  });
  it('renders one line per KPI with its figure, counts, goal and verdict', () => {
    const text = renderKpis(report);
    expect(text).toContain('50.0%');
    expect(text).toContain('1234 ms');
    expect(text).toContain('1/2');
    expect(text).toContain('MISSED');
    expect(text).toContain('missing=1');
    expect(text).not.toContain('zero=0');
    expect(text).toContain('note: not checked');
  });
});
