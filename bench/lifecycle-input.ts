import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { projectRoot } from '../src/config/env.ts';
import type { LifecycleInput } from '../src/domain/lifecycle.ts';

export const WDBC_CSV = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin', 'wdbc.csv');

/** A low-risk WDBC lifecycle as the benches start it: a fresh commit each time, so each is a new lifecycle. */
export function benchLifecycleInput(modelName: string, epochs: number, developer = 'alice@hospital.example'): LifecycleInput {
  return {
    modelName,
    datasetPath: WDBC_CSV,
    commitSha: randomBytes(20).toString('hex'),
    imageDigest: `sha256:${'be'.repeat(32)}`,
    riskTier: 'low',
    requester: 'ci@hospital.example',
    developer,
    training: { epochs, seed: 7 },
  };
}
