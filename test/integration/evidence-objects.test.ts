import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { ObjectsResult } from '../../src/audit/verify.ts';
import { tritonUrl } from '../../src/dev/components/triton.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { createLogger } from '../../src/log.ts';
import { parseS3Uri } from '../../src/serving/artifact.ts';
import { reconcileServing } from '../../src/serving/reconcile.ts';
import { TritonClient } from '../../src/serving/triton.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;
const s3 = createS3(env);
afterAll(() => s3.destroy());

const approve = (modelDigest: string) => ({ approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest });

/** Deletes an object the way an operator (or an attacker) would; on a store that refuses, overwrites it (a new version). Returns how to undo it. */
async function removeObject(loc: { bucket: string; key: string }): Promise<{ how: 'deleted' | 'overwritten'; undo: () => Promise<void> }> {
  try {
    const res = await s3.send(new DeleteObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
    // Versioned bucket: the delete is a marker on top; removing the marker brings the object back.
    return { how: 'deleted', undo: async () => void (await s3.send(new DeleteObjectCommand({ Bucket: loc.bucket, Key: loc.key, VersionId: res.VersionId }))) };
  } catch {
    const res = await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: 'other bytes' }));
    return {
      how: 'overwritten',
      undo: async () => void (await s3.send(new DeleteObjectCommand({ Bucket: loc.bucket, Key: loc.key, VersionId: res.VersionId }))),
    };
  }
}

describe('evidence is checked, not assumed (real S3, registry, Triton)', () => {
  it('a deployed model whose artifact is deleted: audit verify --objects exits 7 naming it, trace marks it, reconcile refuses to load it and records why once', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-gone` });
    const status = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.signal('approve', approve(status.modelDigest!));
    const outcome = (await handle.result()) as LifecycleOutcome;
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    const ref = `${input.modelName}@${outcome.version}`;
    const mv = await db
      .selectFrom('model_versions')
      .select(['artifact_uri', 'artifact_digest'])
      .where('workflow_id', '=', workflowId)
      .executeTakeFirstOrThrow();
    const loc = parseS3Uri(mv.artifact_uri)!;
    expect(loc.bucket).toBe(bucket(env, 'artifacts'));

    const removed = await removeObject(loc);
    try {
      // audit verify --objects: exit 7, the object named by table, id and URI.
      const verify = await factoryCli(['audit', 'verify', '--objects', '--json']);
      expect(verify.code, verify.stderr).toBe(7);
      const report = JSON.parse(verify.stdout) as { ok: boolean; objects: ObjectsResult };
      expect(report.ok).toBe(false);
      expect(report.objects.problems).toContainEqual(
        expect.objectContaining({
          table: 'model_versions',
          id: ref,
          role: 'artifact',
          uri: mv.artifact_uri,
          state: removed.how === 'deleted' ? 'missing' : 'different',
        }),
      );
      const human = await factoryCli(['audit', 'verify', '--objects']);
      expect(human.code).toBe(7);
      expect(human.stdout).toContain(`model_versions ${ref} artifact ${mv.artifact_uri}: ${removed.how === 'deleted' ? 'MISSING' : 'DIFFERENT'}`);

      // trace marks the object (and only that one).
      const traced = JSON.parse((await factoryCli(['trace', ref, '--json'])).stdout) as ModelTrace;
      expect(traced.objects?.find((o) => o.role === 'artifact')).toMatchObject({
        uri: mv.artifact_uri,
        state: removed.how === 'deleted' ? 'missing' : 'different',
      });
      expect(traced.objects?.filter((o) => o.state !== 'ok').map((o) => o.role)).toEqual(['artifact']);
      expect((await factoryCli(['trace', ref])).stdout).toMatch(/artifact .*\[(MISSING from|DIFFERENT in) object storage/);

      // Triton loses the model (as after a restart); reconcile must not load it from the repository on disk.
      const triton = new TritonClient(tritonUrl(env));
      await triton.unload(input.modelName);
      for (let i = 0; i < 50 && (await triton.versionReady(input.modelName, outcome.version)); i++) await sleep(100);
      const deps = { env, db, s3, log: createLogger('test-reconcile', 'silent') };
      const first = await reconcileServing(deps, { ignoreBackoff: true });
      const mine = first.versions.find((v) => v.model === input.modelName);
      expect(mine).toMatchObject({
        outcome: 'refused',
        artifactUri: mv.artifact_uri,
        reason: expect.stringMatching(removed.how === 'deleted' ? /artifact missing/ : /artifact different/),
      });
      const again = await reconcileServing(deps, { ignoreBackoff: true });
      expect(again.versions.find((v) => v.model === input.modelName)).toMatchObject({ outcome: 'refused', auditEventId: mine!.auditEventId });
      // Recorded once per (deployment, Triton start), however many passes and reconcilers saw it.
      const events = await db
        .selectFrom('audit_events')
        .select(['event_id', 'kind', 'payload'])
        .where('workflow_id', '=', workflowId)
        .where('kind', '=', 'serving.artifact_refused')
        .execute();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        event_id: mine!.auditEventId,
        payload: expect.objectContaining({
          artifactUri: mv.artifact_uri,
          expectedDigest: mv.artifact_digest,
          reason: removed.how === 'deleted' ? 'missing' : 'different',
        }),
      });
      expect(await triton.versionReady(input.modelName, outcome.version)).toBe(false);
      const notServed = JSON.parse((await factoryCli(['trace', ref, '--json'])).stdout) as ModelTrace;
      expect(notServed.deployment?.serving).toBe('not loaded');
      // The chain stays intact with the new events.
      const chain = JSON.parse((await factoryCli(['audit', 'verify', '--json'])).stdout) as { chain: { ok: boolean } };
      expect(chain.chain.ok).toBe(true);
    } finally {
      await removed.undo();
    }
    // The object back as it was: the next pass serves it again.
    const restored = await reconcileServing({ env, db, s3, log: createLogger('test-reconcile', 'silent') }, { ignoreBackoff: true });
    expect(restored.versions.find((v) => v.model === input.modelName)?.outcome ?? 'already ready').toMatch(/reloaded|already ready/);
    expect(await new TritonClient(tritonUrl(env)).versionReady(input.modelName, outcome.version)).toBe(true);
  });

  it('a deploy whose artifact object is gone fails at once as EvidenceMissing naming the key (no retries)', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-nokey` });
    const status = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
    const key = `models/${input.modelName}/${status.modelDigest!.slice(7)}/model.onnx`;
    const removed = await removeObject({ bucket: bucket(env, 'artifacts'), key });
    try {
      const handle = suite.client.workflow.getHandle(workflowId);
      await handle.signal('approve', approve(status.modelDigest!));
      await handle.result().catch(() => undefined);
      const events = (await handle.fetchHistory()).events ?? [];
      const deployTasks = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deployToTriton');
      expect(deployTasks).toHaveLength(1);
      const scheduledId = Number(deployTasks[0]!.eventId);
      const failure = events.find((e) => Number(e.activityTaskFailedEventAttributes?.scheduledEventId) === scheduledId)?.activityTaskFailedEventAttributes
        ?.failure;
      if (removed.how === 'deleted') {
        expect(failure?.applicationFailureInfo).toMatchObject({ type: 'EvidenceMissing', nonRetryable: true });
        expect(failure?.message).toContain(key);
      } else {
        expect(failure?.applicationFailureInfo).toMatchObject({ type: 'TamperedArtifact', nonRetryable: true });
      }
      // One attempt: a missing object is not retried (the started event carries the last attempt's number).
      const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === scheduledId);
      expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(1);
      // Never served.
      expect(await new TritonClient(tritonUrl(env)).versionReady(input.modelName, 1).catch(() => false)).toBe(false);
    } finally {
      await removed.undo();
    }
  });
});
