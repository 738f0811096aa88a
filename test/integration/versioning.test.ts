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
/** The last workflow code before signed approvals (`patched('signed-approvals')`). */
const BEFORE_SIGNED_APPROVALS = 'dd937e1';

function releasedWorkflowsDir(commit = RELEASED_COMMIT): string {
  const dir = path.join(env.FACTORY_HOME, `released-${commit}`);
  if (!fs.existsSync(path.join(dir, 'workflows', 'index.ts'))) {
    fs.mkdirSync(dir, { recursive: true });
    try {
      const tar = execFileSync('git', ['-C', projectRoot, 'archive', '--format=tar', commit, 'workflows', 'src', 'temporal'], { maxBuffer: 64 << 20 });
      execFileSync('tar', ['-x', '-C', dir], { input: tar });
    } catch (err) {
      throw new Error(`this test needs commit ${commit} in the clone (a shallow clone lacks it; fetch with --unshallow): ${(err as Error).message}`);
    }
    fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
  }
  return dir;
}

const suite = lifecycleSuite({ startWorkers: false });

/** The patch ids (`patched('…')`) recorded in a workflow's history. */
async function patchIdsOf(workflowId: string): Promise<string[]> {
  const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .flatMap((e) =>
      Object.values(e.markerRecordedEventAttributes?.details ?? {}).flatMap((p) => (p.payloads ?? []).map((x) => Buffer.from(x.data ?? []).toString())),
    )
    .map((data) => (JSON.parse(data) as { id: string }).id);
}

/** A control worker on the test's queue running the workflow code of `commit`; `stop()` is the upgrade. */
async function releasedControlWorker(prefix: string, commit = RELEASED_COMMIT) {
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(releasedWorkflowsDir(commit), 'workflows', 'index.ts'),
    logger: new DefaultLogger('WARN'),
  });
  const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: `${prefix}control`,
    workflowBundle: bundle,
    activities: controlActivities,
  });
  const running = worker.run();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    worker.shutdown();
    await running;
  };
  return {
    stop,
    close: async () => {
      await stop();
      await connection.close();
    },
  };
}

describe('a lifecycle waiting at its gate survives a worker upgrade (workflow versioning)', () => {
  it('started on the released code, approved and deployed by the current code', async () => {
    const { workers } = suite;
    await workers.start('gpu-onprem');
    await workers.start('serving');
    const released = await releasedControlWorker(workers.prefix);
    try {
      const { workflowId } = await startTestLifecycle(suite.client, workers);
      const waiting = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
      expect(waiting.counts).toBeUndefined(); // the released gate's status has no counts

      // The upgrade: the released worker stops, a worker with the current code takes over.
      await released.stop();
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
      // The current code replayed the released path: no bounded-gate (nor signed-approvals) marker in this
      // history. Patches taken after the gate (the lifecycle's end: audit-checkpoint) may be there.
      const patches = await patchIdsOf(workflowId);
      expect(patches).not.toContain('bounded-gate');
      expect(patches).not.toContain('signed-approvals');
    } finally {
      await released.close();
    }
  }, 300_000);

  it('a medium-risk lifecycle whose gate opened before signed approvals keeps its rules: unsigned approvals still count after the upgrade', async () => {
    const { workers } = suite;
    // The first test's workers (current code on the control queue) make way for the released code.
    await workers.stopAll();
    await workers.start('gpu-onprem');
    await workers.start('serving');
    const released = await releasedControlWorker(workers.prefix, BEFORE_SIGNED_APPROVALS);
    try {
      const { workflowId } = await startTestLifecycle(suite.client, workers, { riskTier: 'medium' });
      const waiting = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
      await released.stop();
      await workers.start('control');
      for (const [approver, role] of [
        ['omar@hospital.example', 'model-owner'],
        ['vera@hospital.example', 'validator'],
      ] as const) {
        const verdict = await decide(suite.client, workflowId, { decision: 'approve', approver, role, meaning: 'approval', modelDigest: waiting.modelDigest! });
        expect(verdict).toMatchObject({ accepted: true });
      }
      const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
      expect(outcome.outcome).toBe('deployed');
      // The current code replayed the gate as it opened: bounded, without the signed-approvals marker.
      const patchIds = await patchIdsOf(workflowId);
      expect(patchIds).toContain('bounded-gate');
      expect(patchIds).not.toContain('signed-approvals');
    } finally {
      await released.close();
    }
  }, 300_000);
});
