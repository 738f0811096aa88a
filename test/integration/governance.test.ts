import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { isAlive } from '../../src/dev/process.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { DATASET, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// A policy pack whose low tier times out after a few seconds, for these workers only.
const policyFile = path.join(env.FACTORY_HOME, 'test-policy-short-timeout.yaml');
fs.mkdirSync(env.FACTORY_HOME, { recursive: true });
fs.writeFileSync(policyFile, stackPolicyText().replace('approvalTimeout: 7d', 'approvalTimeout: 8s'));

// The real dataset with three bad rows appended, as a hospital export might have them.
const dirtyDir = path.join(env.FACTORY_HOME, 'test-data', 'wdbc-dirty');
fs.mkdirSync(dirtyDir, { recursive: true });
const clean = fs.readFileSync(DATASET, 'utf8').trimEnd().split('\n');
const goodRow = clean[1]!.split(',');
fs.writeFileSync(
  path.join(dirtyDir, 'wdbc.csv'),
  [...clean, goodRow.slice(0, 10).join(','), [...goodRow.slice(0, 30), 'X'].join(','), ['-5', ...goodRow.slice(1)].join(',')].join('\n') + '\n',
);
fs.copyFileSync(path.join(path.dirname(DATASET), 'schema.json'), path.join(dirtyDir, 'schema.json'));

const suite = lifecycleSuite({ workerEnv: { FACTORY_POLICY_PACK: policyFile } });
const { db, workers } = suite;

describe('governance edges (real stack)', () => {
  it('bad rows are excluded with a reason each; with nobody approving, the lifecycle times out per policy and is rejected', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, {
      datasetPath: path.join(dirtyDir, 'wdbc.csv'),
      modelName: `bc-${workers.prefix.slice(1, -1)}-dirty`,
    });
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: 'approval timed out after 8s; still pending: model-owner' });
    const trace = JSON.parse((await factoryCli(['trace', input.modelName, '--json'])).stdout) as ModelTrace;
    expect(trace.model.state).toBe('rejected');
    expect(trace.data).toMatchObject({ rowsTotal: 572, rowsAccepted: 569, rowsExcluded: 3 });
    expect(trace.data.exclusions).toEqual([
      { line: 571, reason: 'expected 31 fields, found 10' },
      { line: 572, reason: 'diagnosis="X" is not one of M, B' },
      { line: 573, reason: 'radius_mean=-5 is below the minimum 0' },
    ]);
  });

  it('a `reject` signal from a principal holding a required role ends the lifecycle as rejected', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    await suite.client.workflow.getHandle(workflowId).signal('reject', {
      approver: 'omar@hospital.example',
      role: 'model-owner',
      meaning: 'review',
      modelDigest: s.modelDigest,
      comment: 'recall on the minority class is not documented',
    });
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({
      outcome: 'rejected',
      reason: 'rejected by Omar Haddad <omar@hospital.example> as model-owner: recall on the minority class is not documented',
    });
    const row = await db.selectFrom('approvals').select(['decision', 'accepted']).where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    expect(row).toEqual({ decision: 'reject', accepted: true });
  });

  it('an artifact changed in storage after approval is refused at deployment and never served', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const s3 = createS3(env);
    try {
      const key = `models/${input.modelName}/${s.modelDigest!.slice(7)}/model.onnx`;
      await s3.send(new PutObjectCommand({ Bucket: bucket(env, 'artifacts'), Key: key, Body: 'not the approved model' }));
    } finally {
      s3.destroy();
    }
    await suite.client.workflow
      .getHandle(workflowId)
      .signal('approve', { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest: s.modelDigest });
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/artifact refused at deployment: .* the registry holds sha256:/) });
    const res = await fetch(`http://127.0.0.1:${env.TRITON_HTTP_PORT}/v2/models/${input.modelName}/ready`);
    expect(res.ok).toBe(false);
  });

  it('cancelling a lifecycle during training kills the training job', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers, { training: { epochs: 200_000, seed: 7 } });
    const starts = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'train', 'starts.log');
    for (let i = 0; i < 600 && !fs.existsSync(starts); i++) await sleep(100);
    const pid = Number(/pid=(\d+)/.exec(fs.readFileSync(starts, 'utf8'))![1]);
    expect(isAlive(pid)).toBe(true);
    // A decision through the update while no gate is open is refused synchronously, before history.
    await expect(
      decide(suite.client, workflowId, {
        decision: 'approve',
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: `sha256:${'0'.repeat(64)}`,
      }),
    ).rejects.toThrow(/not awaiting approval \(stage: train\)/);
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
    expect(isAlive(pid)).toBe(false);
    expect(fs.existsSync(path.join(path.dirname(starts), 'result.json'))).toBe(false);
  });
});
