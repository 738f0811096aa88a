/**
 * A benchmark's headline figures as JSON lines, for `npm run bench -- --all`'s closing table. Each
 * sub-bench calls `figure(…)` beside its own printing; the lines go to the file named by
 * FACTORY_BENCH_SUMMARY (the orchestrator sets it), and nowhere when it is unset, so a bench run on
 * its own prints exactly what it printed before.
 */
import fs from 'node:fs';

export interface Figure {
  /** What is measured, e.g. "traceModel p99 at 1 M events". */
  figure: string;
  value: number;
  unit: string;
  /** The goal as words, e.g. "< 10 ms", or "" when the figure has none (context only). */
  goal: string;
  /** Whether the goal is met; null when there is no goal. */
  met: boolean | null;
}

export function figure(name: string, value: number, unit: string, goal = '', met: boolean | null = null): void {
  const file = process.env.FACTORY_BENCH_SUMMARY;
  if (!file) return;
  const line: Figure = { figure: name, value: Number.isFinite(value) ? Math.round(value * 1000) / 1000 : NaN, unit, goal, met };
  fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
}

/** The figures a summary file holds, in order; lines that do not parse are skipped (a bench killed mid-write). */
export function readFigures(file: string): Figure[] {
  if (!fs.existsSync(file)) return [];
  const out: Figure[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const f = JSON.parse(line) as Figure;
      if (typeof f.figure === 'string' && typeof f.unit === 'string') out.push({ ...f, value: f.value ?? NaN });
    } catch {
      // a torn last line
    }
  }
  return out;
}
