import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { workflowBundle } from '../../workers/worker.ts';

const fixtures = path.join(projectRoot, 'test', 'fixtures');
Runtime.install({ logger: new DefaultLogger('WARN') });

/**
 * Recorded histories of real lifecycles (and rollbacks, drills), replayed against the current
 * workflow code: a change that would break running workflows (non-determinism) fails here.
 */
describe('replay of recorded lifecycle histories', () => {
  // Lifecycles, retirements (workflows/retirement.ts), rollbacks and drills (workflows/rollback.ts), legal holds and
  // retention sweeps (workflows/governance.ts), artifact promotions (workflows/promotion.ts), revalidation sweeps and reviews
  // (workflows/revalidation.ts): one history per terminal path.
  const files = fs.readdirSync(fixtures).filter((f) => /^(lifecycle|retirement|rollback|drill|legal-hold|retention|promotion|revalidation)-.*\.json$/.test(f));

  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(`replays ${file}`, async () => {
      // runReplayHistory accepts the Temporal CLI's JSON form as it is (it converts it itself).
      const history = JSON.parse(fs.readFileSync(path.join(fixtures, file), 'utf8')) as {
        events: Array<{ workflowExecutionStartedEventAttributes?: { workflowId?: string } }>;
      };
      // Replayed under the workflow id it ran with: a signed statement binds it, so the gate reads it.
      const workflowId = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowId ?? file;
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId);
    }, 60_000);
  }
});
