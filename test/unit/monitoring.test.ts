import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import { MAX_MONITORED_ROWS, binOf, binRows, scoresOf } from '../../src/monitoring/bins.ts';
import { trainingDistributionSchema, type TrainingDistribution } from '../../src/monitoring/distribution.ts';
import { EPSILON, psi } from '../../src/monitoring/psi.ts';
import { type MonitoringThresholds, type WindowCounts, denseCounts, judgeWindow, windowBounds } from '../../src/monitoring/window.ts';
import { monitoringPolicySchema } from '../../src/policy/schema.ts';
import { env } from '../helpers.ts';

const TENTHS = Array.from({ length: 10 }, () => 0.1);

describe('PSI', () => {
  it('is 0 when the observed shares equal the expected ones', () => {
    expect(psi(TENTHS, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5])).toBeCloseTo(0, 12);
    expect(psi([0.5, 0.5], [0, 0])).toBe(0); // nothing observed: nothing to judge
  });

  it('matches the formula Σ (a − e) ln(a / e) on a worked example', () => {
    // expected 0.5/0.5, observed 0.8/0.2: 0.3 ln 1.6 + (−0.3) ln 0.4
    expect(psi([0.5, 0.5], [8, 2])).toBeCloseTo(0.3 * Math.log(1.6) - 0.3 * Math.log(0.4), 12);
  });

  it('floors empty bins at EPSILON so a bin never seen in training that fills up counts heavily, finitely', () => {
    const v = psi([0.5, 0.5, 0], [0, 0, 10]);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeCloseTo((1 - EPSILON) * Math.log(1 / EPSILON) + 2 * (EPSILON - 0.5) * Math.log(EPSILON / 0.5), 9);
    expect(v).toBeGreaterThan(5);
  });

  it('is symmetric in the sense that matters: a larger shift gives a larger index', () => {
    const small = psi(TENTHS, [12, 10, 10, 10, 10, 10, 10, 10, 10, 8]);
    const large = psi(TENTHS, [40, 10, 10, 10, 10, 10, 5, 3, 1, 1]);
    expect(small).toBeLessThan(0.1);
    expect(large).toBeGreaterThan(0.25);
  });

  it('refuses bin counts that do not line up', () => {
    expect(() => psi([0.5, 0.5], [1, 2, 3])).toThrow(/2 expected bins and 3 observed/);
  });
});

describe('bins', () => {
  const edges = [1, 2, 2, 3];
  it('counts the edges at or below the value (numpy searchsorted side="right")', () => {
    expect([0.5, 1, 1.5, 2, 2.5, 3, 99, -Infinity].map((v) => binOf(edges, v))).toEqual([0, 1, 1, 3, 3, 4, 4, 0]);
  });

  it("is the trainer's rule, value for value (trainers/common.py bin_index)", () => {
    const values = [-1, 0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.9, 1, 1.5, 2, 2.0000001, 3, 1e9];
    const fEdges = [0.1, 0.2, 0.2, 0.3, 0.5, 0.5, 0.9, 1, 2];
    const py = execFileSync(
      venvPaths(env).python,
      [
        '-c',
        'import json,sys; sys.path.insert(0,"trainers"); from common import bin_index; a=json.loads(sys.argv[1]); print(json.dumps([int(b) for b in bin_index(a[0], a[1])]))',
        JSON.stringify([fEdges, values]),
      ],
      { cwd: projectRoot, encoding: 'utf8' },
    );
    expect(values.map((v) => binOf(fEdges, v))).toEqual(JSON.parse(py));
  });

  it('bins a [rows, features] input row-major, at most MAX_MONITORED_ROWS rows, and nothing of another shape', () => {
    const fe = [[0], [10, 20]];
    expect(binRows(fe, [2, 2], [-1, 15, 1, 25])).toEqual([0, 1, 1, 2]);
    expect(binRows(fe, [1, 3], [1, 2, 3])).toBeUndefined();
    expect(binRows(fe, [4], [1, 2, 3, 4])).toBeUndefined();
    expect(binRows(fe, [1, 2], [Number.NaN, 2])).toBeUndefined();
    const many = MAX_MONITORED_ROWS + 10;
    expect(binRows(fe, [many, 2], new Array(many * 2).fill(1))).toHaveLength(MAX_MONITORED_ROWS * 2);
  });

  it('takes scores from a [rows, 1] output, in [0, 1], bounded like the bins', () => {
    expect(scoresOf([2, 1], [0.2, 0.9])).toEqual([0.2, 0.9]);
    expect(scoresOf([2, 2], [0.2, 0.9, 0.1, 0.1])).toBeUndefined();
    expect(scoresOf([1, 1], [1.5])).toBeUndefined();
    expect(scoresOf([1, 1], ['x'])).toBeUndefined();
  });
});

describe('window maths', () => {
  const distribution: TrainingDistribution = trainingDistributionSchema.parse({
    version: 1,
    split: 'train',
    rows: 100,
    features: [
      { name: 'a', edges: [1, 2, 3, 4, 5, 6, 7, 8, 9], proportions: TENTHS },
      { name: 'b', edges: [1, 2, 3, 4, 5, 6, 7, 8, 9], proportions: TENTHS },
    ],
    score: { edges: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], proportions: TENTHS, positiveRate: 0.5, meanConfidence: 0.8 },
  });
  const t: MonitoringThresholds = monitoringPolicySchema.parse({ minRows: 100 });

  /** `rows` rows: feature a spread evenly, feature b all in bin `bBin`; scores spread evenly with confidence 0.8. */
  function counts(rows: number, bBin: number | null, extra: Partial<WindowCounts> = {}): WindowCounts {
    const even = Array.from({ length: 10 }, (_, bin) => ({ bin, count: rows / 10 }));
    return {
      requests: rows,
      errors: 0,
      latencyP95Ms: 20,
      rows,
      featureBins: [
        ...even.map((e) => ({ feature: 0, ...e })),
        ...(bBin === null ? even.map((e) => ({ feature: 1, ...e })) : [{ feature: 1, bin: bBin, count: rows }]),
      ],
      scoreBins: even,
      scores: rows,
      positives: rows / 2,
      confidenceSum: rows * 0.8,
      ...extra,
    };
  }

  it('an undrifted window breaches nothing, and its figures are the ones computed', () => {
    const { figures, breaches } = judgeWindow(counts(200, null), distribution, t);
    expect(breaches).toEqual([]);
    expect(figures).toMatchObject({
      driftJudged: true,
      featurePsi: { a: 0, b: 0 },
      predictionPsi: 0,
      positiveRate: 0.5,
      meanConfidence: 0.8,
      confidenceShift: 0,
      errorRate: 0,
    });
  });

  it('a feature piled into one bin breaches feature-psi, naming the feature', () => {
    const { figures, breaches } = judgeWindow(counts(200, 9), distribution, t);
    expect(breaches).toEqual([{ metric: 'feature-psi', feature: 'b', value: figures.featurePsi!.b, threshold: t.maxFeaturePsi }]);
    expect(figures.maxFeaturePsi?.feature).toBe('b');
  });

  it('judges no drift under minRows (PSI over few rows is noise), but still errors and latency', () => {
    const { figures, breaches } = judgeWindow(counts(50, 9, { errors: 10, latencyP95Ms: 5000 }), distribution, t);
    expect(figures.driftJudged).toBe(false);
    expect(figures.featurePsi).toBeNull();
    expect(breaches.map((b) => b.metric)).toEqual(['error-rate', 'latency-p95']);
    expect(breaches[0]!.value).toBe(0.2);
  });

  it('judges no drift without a training distribution', () => {
    expect(judgeWindow(counts(500, 9), undefined, t).figures.driftJudged).toBe(false);
  });

  it('a confidence drop and a prediction shift breach their thresholds', () => {
    const { breaches } = judgeWindow(counts(200, null, { confidenceSum: 200 * 0.55, scoreBins: [{ bin: 5, count: 200 }] }), distribution, t);
    expect(breaches.map((b) => b.metric).sort()).toEqual(['confidence-shift', 'prediction-psi']);
  });

  it('an empty window has no error rate and no latency', () => {
    const { figures, breaches } = judgeWindow(
      { requests: 0, errors: 0, latencyP95Ms: null, rows: 0, featureBins: [], scoreBins: [], scores: 0, positives: 0, confidenceSum: 0 },
      distribution,
      t,
    );
    expect(breaches).toEqual([]);
    expect(figures).toMatchObject({ errorRate: null, latencyP95Ms: null, driftJudged: false });
  });

  it('dense counts ignore bins out of range (rows binned against other edges)', () => {
    expect(
      denseCounts(
        [
          { bin: 0, count: 2 },
          { bin: 2, count: 1 },
          { bin: 7, count: 5 },
          { bin: -1, count: 1 },
        ],
        3,
      ),
    ).toEqual([2, 0, 1]);
  });

  it('windows are contiguous and half-open: consecutive windows share only their boundary', () => {
    const w0 = windowBounds(1_000, 5_000, 0);
    const w1 = windowBounds(1_000, 5_000, 1);
    expect(w0).toEqual({ start: 1_000, end: 6_000 });
    expect(w1.start).toBe(w0.end);
  });

  it('the distribution schema refuses a malformed distribution (edges decreasing, proportions miscounted)', () => {
    const base = { version: 1, split: 'train', rows: 1, score: distribution.score };
    expect(trainingDistributionSchema.safeParse({ ...base, features: [{ name: 'a', edges: [2, 1], proportions: [0.3, 0.3, 0.4] }] }).success).toBe(false);
    expect(trainingDistributionSchema.safeParse({ ...base, features: [{ name: 'a', edges: [1, 2], proportions: [0.5, 0.5] }] }).success).toBe(false);
  });
});
