/**
 * Population Stability Index of observed bin counts against expected proportions:
 *   PSI = Σ (a_i − e_i) · ln(a_i / e_i)
 * with a_i the observed share of bin i. A share of 0 (an empty bin on either side) is floored at
 * `EPSILON` so the sum stays finite: a bin never seen in training that fills up counts heavily,
 * as it should. Conventional reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant shift.
 */
export const EPSILON = 1e-4;

export function psi(expected: readonly number[], observedCounts: readonly number[]): number {
  if (expected.length !== observedCounts.length) throw new Error(`PSI over ${expected.length} expected bins and ${observedCounts.length} observed`);
  const total = observedCounts.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let sum = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.max(expected[i]!, EPSILON);
    const a = Math.max(observedCounts[i]! / total, EPSILON);
    sum += (a - e) * Math.log(a / e);
  }
  return sum;
}
