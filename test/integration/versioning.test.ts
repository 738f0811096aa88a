import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { controlActivities } from '../../activities/index.ts';
import { projectRoot } from '../../src/config/env.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { env } from '../helpers.ts';
import { lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

/**
 * The last released workflow code before the bounded gate (`patched('bounded-gate')`): the commit
 * running lifecycles were started on. Taken from git, so the test runs that code itself, not a copy.
 */
const RELEASED_COMMIT = 'fb749d2';

function releasedWorkflowsDir(): string {
  const dir = path.join(env.FACTORY_HOME, `released-${RELEASED_COMMIT}`);
  if (!fs.existsSync(path.join(dir, 'workflows', 'index.ts'))) {
    fs.mkdirSync(dir, { recursive: true });
    try {
      const tar = execFileSync('git', ['-C', projectRoot, 'archive', '--format=tar', RELEASED_COMMIT, 'workflows', 'src', 'temporal'], { maxBuffer: 64 << 20 });
      execFileSync('tar', ['-x', '-C', dir], { input: tar });
    } catch (err) {
      throw new Error(`this test needs commit ${RELEASED_COMMIT} in the clone (a shallow clone lacks it; fetch with --unshallow): ${(err as Error).message}`);
    }
    fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
  }
  return dir;
}

const suite = lifecycleSuite({ startWorkers: false });

describe('a lifecycle waiting at its gate survives a worker upgrade (workflow versioning)', () => {
  it('started on the released code, approved and deployed by the current code', async () => {
    const { workers } = suite;
    await workers.start('gpu-onprem');
    await workers.start('serving');
    const bundle = await bundleWorkflowCode({ workflowsPath: path.join(releasedWorkflowsDir(), 'workflows', 'index.ts'), logger: new DefaultLogger('WARN') });
    const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
    const released = await Worker.create({
      connection,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: `${workers.prefix}control`,
      workflowBundle: bundle,
      activities: controlActivities,
    });
    const running = released.run();
    let stopped = false;
    try {
      const { workflowId } = await startTestLifecycle(suite.client, workers);
      const waiting = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
      expect(waiting.counts).toBeUndefined(); // the released gate's status has no counts

      // The upgrade: the released worker stops, a worker with the current code takes over.
      released.shutdown();
      await running;
      stopped = true;
      await workers.start('control');

      const verdict = await decide(suite.client, workflowId, {
        decision: 'approve',
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: waiting.modelDigest!,
      });
      expect(verdict.accepted).toBe(true);
      const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
      expect(outcome.outcome).toBe('deployed');
      // The current code replayed the released path: no bounded-gate marker in this history.
      const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
      const markers = (history.events ?? []).filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
      expect(markers).toEqual([]);
    } finally {
      if (!stopped) {
        released.shutdown();
        await running;
      }
      await connection.close();
    }
  }, 240_000);
});
