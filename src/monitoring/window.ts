import { psi } from './psi.ts';
import type { TrainingDistribution } from './distribution.ts';

/** A tier's monitoring thresholds (policy pack `riskTiers.<tier>.monitoring`, src/policy/schema.ts). */
export interface MonitoringThresholds {
  minRows: number;
  maxFeaturePsi: number;
  maxPredictionPsi: number;
  maxConfidenceShift: number;
  maxErrorRate: number;
  maxLatencyP95Ms: number;
}

/** What the window's SQL counts over the request log (activities/monitoring.ts). */
export interface WindowCounts {
  /** Requests that reached the version (any outcome). */
  requests: number;
  /** Of those, answered 5xx (Triton or the gateway failed). */
  errors: number;
  /** p95 latency of the served ones; null without any. */
  latencyP95Ms: number | null;
  /** Rows binned (served rows of requests in the version's input shape). */
  rows: number;
  /** Per feature (index in the distribution) and bin: how many rows fell there. */
  featureBins: ReadonlyArray<{ feature: number; bin: number; count: number }>;
  /** Per score bin: how many scores fell there. */
  scoreBins: ReadonlyArray<{ bin: number; count: number }>;
  scores: number;
  positives: number;
  confidenceSum: number;
}

export type BreachMetric = 'feature-psi' | 'prediction-psi' | 'confidence-shift' | 'error-rate' | 'latency-p95';

export interface Breach {
  metric: BreachMetric;
  /** The feature, for feature-psi. */
  feature?: string;
  value: number;
  threshold: number;
}

export interface WindowFigures {
  requests: number;
  errors: number;
  errorRate: number | null;
  latencyP95Ms: number | null;
  rows: number;
  /** Drift was judged (enough rows and a training distribution); else only errors and latency. */
  driftJudged: boolean;
  featurePsi: Record<string, number> | null;
  maxFeaturePsi: { feature: string; value: number } | null;
  predictionPsi: number | null;
  positiveRate: number | null;
  meanConfidence: number | null;
  confidenceShift: number | null;
}

/**
 * Counts per bin, dense (length `bins`), from sparse (bin, count) pairs. A bin out of range (a row
 * binned against other edges) is not counted: it cannot be compared with this distribution.
 */
export function denseCounts(pairs: ReadonlyArray<{ bin: number; count: number }>, bins: number): number[] {
  const out = new Array<number>(bins).fill(0);
  for (const { bin, count } of pairs) if (Number.isInteger(bin) && bin >= 0 && bin < bins) out[bin]! += count;
  return out;
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * One window's figures against the training distribution, and the breaches of the tier's thresholds.
 * Drift (feature PSI, prediction PSI, confidence shift) is judged only over `minRows` rows or more:
 * PSI over few rows is noise (its expectation with no drift at all is about (bins − 1) / rows).
 * Error rate and latency are judged on any window with requests.
 */
export function judgeWindow(
  counts: WindowCounts,
  distribution: TrainingDistribution | undefined,
  t: MonitoringThresholds,
): { figures: WindowFigures; breaches: Breach[] } {
  const breaches: Breach[] = [];
  const errorRate = counts.requests > 0 ? round(counts.errors / counts.requests) : null;
  const latency = counts.latencyP95Ms === null ? null : round(counts.latencyP95Ms);
  const driftJudged = !!distribution && counts.rows >= t.minRows;
  let featurePsi: Record<string, number> | null = null;
  let maxFeature: WindowFigures['maxFeaturePsi'] = null;
  let predictionPsi: number | null = null;
  let positiveRate: number | null = null;
  let meanConfidence: number | null = null;
  let confidenceShift: number | null = null;
  if (driftJudged) {
    featurePsi = {};
    distribution.features.forEach((f, i) => {
      const value = round(
        psi(
          f.proportions,
          denseCounts(
            counts.featureBins.filter((b) => b.feature === i),
            f.proportions.length,
          ),
        ),
      );
      featurePsi![f.name] = value;
      if (!maxFeature || value > maxFeature.value) maxFeature = { feature: f.name, value };
      if (value > t.maxFeaturePsi) breaches.push({ metric: 'feature-psi', feature: f.name, value, threshold: t.maxFeaturePsi });
    });
    if (counts.scores > 0) {
      predictionPsi = round(psi(distribution.score.proportions, denseCounts(counts.scoreBins, distribution.score.proportions.length)));
      positiveRate = round(counts.positives / counts.scores);
      meanConfidence = round(counts.confidenceSum / counts.scores);
      confidenceShift = round(Math.abs(meanConfidence - distribution.score.meanConfidence));
      if (predictionPsi > t.maxPredictionPsi) breaches.push({ metric: 'prediction-psi', value: predictionPsi, threshold: t.maxPredictionPsi });
      if (confidenceShift > t.maxConfidenceShift) breaches.push({ metric: 'confidence-shift', value: confidenceShift, threshold: t.maxConfidenceShift });
    }
  }
  if (errorRate !== null && errorRate > t.maxErrorRate) breaches.push({ metric: 'error-rate', value: errorRate, threshold: t.maxErrorRate });
  if (latency !== null && latency > t.maxLatencyP95Ms) breaches.push({ metric: 'latency-p95', value: latency, threshold: t.maxLatencyP95Ms });
  return {
    figures: {
      requests: counts.requests,
      errors: counts.errors,
      errorRate,
      latencyP95Ms: latency,
      rows: counts.rows,
      driftJudged,
      featurePsi,
      maxFeaturePsi: maxFeature,
      predictionPsi,
      positiveRate,
      meanConfidence,
      confidenceShift,
    },
    breaches,
  };
}

/**
 * The windows a monitor run covers: window i of a run starting at `startMs` ends at
 * startMs + (i + 1) · windowMs. Windows are contiguous and half-open [start, end), so a request is
 * counted in exactly one window; a run continued as new starts where the last one ended.
 */
export function windowBounds(runStartMs: number, windowMs: number, index: number): { start: number; end: number } {
  return { start: runStartMs + index * windowMs, end: runStartMs + (index + 1) * windowMs };
}
