import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite, startTestLifecycle, temporalCli, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;

async function endEvent(workflowId: string) {
  return db
    .selectFrom('audit_events')
    .select(['step', 'kind', 'actor', 'payload'])
    .where('workflow_id', '=', workflowId)
    .where('kind', 'like', 'lifecycle.%')
    .where('kind', '<>', 'lifecycle.started')
    .executeTakeFirst();
}

describe('a lifecycle that fails or is cancelled leaves a terminal record (real stack)', () => {
  it('fails before registration: a terminal audit event names the root cause', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers, { datasetPath: path.join(projectRoot, 'datasets', 'no-such-dataset', 'data.csv') });
    await expect(suite.client.workflow.getHandle(workflowId).result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const event = await endEvent(workflowId);
    expect(event).toMatchObject({ step: 'lifecycle.failed', kind: 'lifecycle.failed' });
    expect(String((event!.payload as { cause?: string }).cause)).toMatch(/^Dataset\w+: /);
    expect(await db.selectFrom('model_versions').select('id').where('workflow_id', '=', workflowId).execute()).toEqual([]);
  });

  it('fails at deployment (its artifact is gone): the version is `failed`, not left `approved`', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const s3 = createS3(env);
    try {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket(env, 'artifacts'), Key: `models/${input.modelName}/${s.modelDigest!.slice(7)}/model.onnx` }));
    } finally {
      s3.destroy();
    }
    await suite.client.workflow
      .getHandle(workflowId)
      .signal('approve', { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest: s.modelDigest });
    await expect(suite.client.workflow.getHandle(workflowId).result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const version = await db.selectFrom('model_versions').select('state').where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    expect(version.state).toBe('failed');
    const event = await endEvent(workflowId);
    expect(event).toMatchObject({ kind: 'lifecycle.failed' });
    expect(String((event!.payload as { cause?: string }).cause)).toMatch(/^EvidenceMissing: /);
    const verify = await factoryCli(['audit', 'verify', '--json']);
    expect(verify.code, verify.stdout).toBe(0);
  });

  it('cancelled at the gate with a reason: the version is `cancelled`, the event names who and why', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers);
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.signal('cancelRequest', { by: 'vera@hospital.example', reason: 'superseded by the next commit' });
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const version = await db.selectFrom('model_versions').select('state').where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    expect(version.state).toBe('cancelled');
    expect(await endEvent(workflowId)).toMatchObject({
      kind: 'lifecycle.cancelled',
      actor: 'vera@hospital.example',
      payload: expect.objectContaining({ cause: 'cancelled: superseded by the next commit' }),
    });
  });

  it('`status` shows the registry beside Temporal, and says when they disagree (terminated around its code)', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers);
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const running = await factoryCli(['status', workflowId, '--json']);
    expect(JSON.parse(running.stdout).registry).toMatchObject({ state: 'validated', agrees: true });
    // Termination bypasses the workflow's code: nothing records the end, the version stays `validated`.
    await temporalCli(['workflow', 'terminate', '--workflow-id', workflowId, '--reason', 'operator test']);
    const status = await factoryCli(['status', workflowId, '--json']);
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout)).toMatchObject({
      temporalStatus: 'TERMINATED',
      registry: { state: 'validated', agrees: false, reason: expect.stringMatching(/TERMINATED/) },
    });
    const human = await factoryCli(['status', workflowId]);
    expect(human.stdout).toMatch(/DISAGREES with Temporal: Temporal says TERMINATED/);
  });
});
