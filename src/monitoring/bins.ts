/**
 * The bin of a value against a feature's edges: how many edges are <= it (0 .. edges.length), the
 * same rule as the trainer's numpy.searchsorted(edges, v, side="right") (trainers/common.py), so a
 * served value lands in the bin a training value would. Edges are ascending.
 */
export function binOf(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Most rows of one request whose bins and scores are recorded (the rest are served, logged, not binned). */
export const MAX_MONITORED_ROWS = 64;

/**
 * Bins of a request's rows, row-major (row 0's features, then row 1's…), for the request log: the
 * input is [rows, features] as the version was trained on; anything else (another shape, a feature
 * count that differs) is not binned (undefined). Non-finite values are never binned either.
 */
export function binRows(featureEdges: ReadonlyArray<readonly number[]>, shape: readonly number[], data: ReadonlyArray<number | boolean>): number[] | undefined {
  const features = featureEdges.length;
  if (shape.length !== 2 || shape[1] !== features || features === 0) return undefined;
  const rows = Math.min(shape[0]!, MAX_MONITORED_ROWS);
  const out: number[] = new Array(rows * features);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < features; f++) {
      const v = data[r * features + f];
      if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
      out[r * features + f] = binOf(featureEdges[f]!, v);
    }
  }
  return out;
}

/** The scores (P(positive)) of a request's rows from the model's output [rows, 1], bounded like its bins. */
export function scoresOf(shape: readonly number[], data: readonly unknown[]): number[] | undefined {
  if (shape.length !== 2 || shape[1] !== 1) return undefined;
  const rows = Math.min(shape[0]!, MAX_MONITORED_ROWS, data.length);
  const out: number[] = [];
  for (let i = 0; i < rows; i++) {
    const v = data[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) return undefined;
    out.push(v);
  }
  return out;
}
