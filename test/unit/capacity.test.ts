import { describe, expect, it } from 'vitest';
import { CAPACITY_DEFAULTS, CapacityInputError, UNIT_COSTS, capacity, renderCapacity } from '../../src/capacity/model.ts';

const GiB = 2 ** 30;
const line = (r: ReturnType<typeof capacity>, what: RegExp) => r.storage.find((l) => what.test(l.what))!;

describe('capacity model: storage growth, retention cost, production footprint from unit costs', () => {
  it('audit storage per year is lifecycles × events per lifecycle × bytes per event, kept for the retention years', () => {
    const r = capacity({ lifecyclesPerDay: 1_000, requestsPerSecond: 0 });
    const perYear = (1_000 * 365 * UNIT_COSTS.eventsPerLifecycle.value * UNIT_COSTS.auditEventBytes.value) / GiB;
    const audit = line(r, /audit events/);
    expect(audit.perYearGiB).toBeCloseTo(perYear, 2);
    expect(audit.retainedGiB).toBeCloseTo(perYear * CAPACITY_DEFAULTS.retentionYears, 1);
    expect(audit.costPerYearAtSteadyStateUSD).toBeCloseTo(audit.retainedGiB * UNIT_COSTS.databasePricePerGiBMonth.value * 12, 0);
    expect(audit.basis).toBe('measured');
  });

  it('request logs grow with requests per second and dominate at 2,000/s; they are kept for their own schedule', () => {
    const r = capacity({ lifecyclesPerDay: 1_000, requestsPerSecond: 2_000, requestLogRetentionYears: 2 });
    const logs = line(r, /request logs/);
    expect(logs.perYearGiB).toBeCloseTo((2_000 * 86_400 * 365 * UNIT_COSTS.requestLogBytes.value) / GiB, 1);
    expect(logs.retainedGiB).toBeCloseTo(logs.perYearGiB * 2, 1);
    expect(logs.perYearGiB).toBeGreaterThan(r.totals.perYearGiB / 2);
    expect(logs.basis).toBe('measured'); // 604 B a row, from 1 M logged requests
    expect(r.warnings.join('\n')).toMatch(/request logs must not go through the hash chain/);
  });

  it('doubling the load doubles every growth figure; Temporal keeps histories only for its retention days', () => {
    const a = capacity({ lifecyclesPerDay: 500, requestsPerSecond: 100 });
    const b = capacity({ lifecyclesPerDay: 1_000, requestsPerSecond: 200 });
    for (const [i, l] of a.storage.entries()) expect(b.storage[i]!.perYearGiB).toBeCloseTo(l.perYearGiB * 2, 1);
    const temporal = line(b, /Temporal/);
    expect(temporal.retainedGiB).toBeCloseTo((temporal.perYearGiB * 30) / 365, 2);
  });

  it('sizes serving per zone from requests per second and GPUs from training minutes', () => {
    const r = capacity({ lifecyclesPerDay: 1_000, requestsPerSecond: 2_000, zones: 3, trainingMinutes: 36 });
    expect(r.production.find((p) => p.component.startsWith('serving'))!.need).toMatch(/^2 instance\(s\) per zone × 3 zones/);
    expect(r.production.find((p) => p.component.startsWith('GPU'))!.need).toMatch(/^25 GPUs busy on average/);
    expect(r.rates.chainHeadroom).toBeGreaterThan(100);
  });

  it('warns when the audit chain would run near its measured append rate', () => {
    const r = capacity({ lifecyclesPerDay: 2_000_000, requestsPerSecond: 0 });
    expect(r.rates.chainHeadroom).toBeLessThan(10);
    expect(r.warnings[0]).toMatch(/appends\/s one at a time/);
  });

  it('nothing to store for no load; refuses inputs out of range', () => {
    expect(capacity({ lifecyclesPerDay: 0, requestsPerSecond: 0 }).totals.perYearGiB).toBe(0);
    expect(() => capacity({ lifecyclesPerDay: -1, requestsPerSecond: 0 })).toThrow(CapacityInputError);
    expect(() => capacity({ lifecyclesPerDay: 1, requestsPerSecond: Number.NaN })).toThrow(/requestsPerSecond/);
    expect(() => capacity({ lifecyclesPerDay: 1, requestsPerSecond: 1, newDataShare: 2 })).toThrow(/newDataShare/);
    expect(() => capacity({ lifecyclesPerDay: 1, requestsPerSecond: 1, zones: 1.5 })).toThrow(/zones/);
  });

  it('renders every storage line with its basis, and says what retained means', () => {
    const text = renderCapacity(capacity({ lifecyclesPerDay: 1_000, requestsPerSecond: 2_000 }));
    expect(text).toMatch(/^load: 1000 lifecycles\/day, 2000 requests\/s/);
    expect(text).toMatch(/audit events \(hash chain\)\s+\S+\s+\S+\s+\S+\s+measured/);
    expect(text).toMatch(/retained = per year × years kept/);
  });
});
