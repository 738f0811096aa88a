import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { NUMBER_REFUSALS, parseNumber } from '../../src/datasets/numbers.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import { env } from '../helpers.ts';

type Vector = { cell: string; value?: number; refused?: string };
const VECTORS_FILE = path.join(projectRoot, 'test', 'vectors', 'numbers.json');
const vectors = (JSON.parse(fs.readFileSync(VECTORS_FILE, 'utf8')) as { vectors: Vector[] }).vectors;

function expected(v: Vector): Vector {
  return v.refused !== undefined ? { cell: v.cell, refused: v.refused } : { cell: v.cell, value: v.value };
}

describe('the numeric rule shared by the certifier and the trainer', () => {
  it('the vectors cover every refusal reason and some accepted cells', () => {
    expect(new Set(vectors.filter((v) => v.refused).map((v) => v.refused))).toEqual(new Set(NUMBER_REFUSALS));
    expect(vectors.filter((v) => v.refused === undefined).length).toBeGreaterThan(5);
  });

  it('TypeScript (src/datasets/numbers.ts) gives every vector its verdict', () => {
    const got = vectors.map((v) => {
      const r = parseNumber(v.cell);
      return r.ok ? { cell: v.cell, value: r.value } : { cell: v.cell, refused: r.reason };
    });
    expect(got).toEqual(vectors.map(expected));
  });

  it('Python (trainers/common.py, run by the venv the jobs use) gives every vector the same verdict', async () => {
    const { stdout } = await promisify(execFile)(venvPaths(env).python, [path.join(projectRoot, 'trainers', 'number_vectors.py'), VECTORS_FILE]);
    expect(JSON.parse(stdout)).toEqual(vectors.map(expected));
  });
});
