import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import type { ApprovalStatus } from '../../src/domain/approval.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import {
  DATASET,
  IMAGE,
  IsolatedWorkers,
  factoryCli,
  lifecycleSuite,
  randomCommit,
  signedDecision,
  startTestLifecycle,
  temporalCli,
  waitForStatus,
} from './harness.ts';

const suite = lifecycleSuite();
const { workers } = suite;

/** The options of a `factory lifecycle start`, overridable one by one. */
function startArgs(over: Record<string, string> = {}): string[] {
  const opts: Record<string, string> = {
    model: `cli-${workers.prefix.slice(1, -1)}`,
    dataset: DATASET,
    commit: randomCommit(),
    image: IMAGE,
    risk: 'low',
    requester: 'ci@hospital.example',
    developer: 'alice@hospital.example',
    ...over,
  };
  return ['lifecycle', 'start', ...Object.entries(opts).flatMap(([k, v]) => [`--${k}`, v])];
}

/** What a terminal must never be handed: C0 controls but the newline, DEL, C1, bidi controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** A raw stack frame: expected conditions never print one. */
const STACK = /\n\s+at .+:\d+:\d+/;

describe('CLI inputs, output and failures (real stack)', () => {
  it('numbers are parsed strictly: a bad --epochs exits 2 naming the option and starts nothing', async () => {
    const commit = randomCommit();
    for (const bad of ['abc', '0', '-1', '1.5', '1e3', '']) {
      const r = await factoryCli([...startArgs({ commit }), '--epochs', bad]);
      expect(r.code, `--epochs ${JSON.stringify(bad)}`).toBe(2);
      expect(r.stderr).toContain("option '--epochs <n>' argument");
      expect(r.stderr).toContain('expected a whole number from 1 to 1000000');
    }
    const r = await factoryCli(['status', `lifecycle-cli-${workers.prefix.slice(1, -1)}-${commit}`]);
    expect(r.code).toBe(6);
  });

  it('a second start with other inputs is refused naming each difference; the same inputs find the lifecycle', async () => {
    // A queue prefix no worker polls: the lifecycle only needs to exist, not to run.
    const idle = { FACTORY_TASK_QUEUE_PREFIX: `idle${workers.prefix}` };
    const commit = randomCommit();
    const first = await factoryCli([...startArgs({ commit }), '--json'], idle);
    expect(first.code, first.stderr).toBe(0);
    const { workflowId } = JSON.parse(first.stdout) as { workflowId: string };
    try {
      // The same inputs, spelled differently (the default epochs named, the default schema named).
      const same = await factoryCli([...startArgs({ commit, epochs: '300', schema: path.join(path.dirname(DATASET), 'schema.json') }), '--json'], idle);
      expect(same.code, same.stderr).toBe(0);
      expect(JSON.parse(same.stdout)).toMatchObject({ workflowId, existing: true });

      const otherImage = `sha256:${'cd'.repeat(32)}`;
      const differing = await factoryCli(
        [
          ...startArgs({ commit, image: otherImage, risk: 'high', epochs: '5', requester: 'other@hospital.example', developer: 'omar@hospital.example' }),
          '--json',
        ],
        idle,
      );
      expect(differing.code).toBe(4);
      expect(differing.stderr).toContain(`lifecycle ${workflowId} already exists with other inputs`);
      expect(differing.stderr).toContain(`imageDigest (existing "${IMAGE}", requested "${otherImage}")`);
      expect(differing.stderr).toContain('riskTier (existing "low", requested "high")');
      expect(differing.stderr).toContain('training.epochs (existing 300, requested 5)');
      expect(JSON.parse(differing.stdout)).toEqual({
        workflowId,
        runId: expect.any(String),
        existing: true,
        refused: true,
        differences: [
          { field: 'imageDigest', existing: IMAGE, requested: otherImage },
          { field: 'riskTier', existing: 'low', requested: 'high' },
          { field: 'requester', existing: 'ci@hospital.example', requested: 'other@hospital.example' },
          { field: 'developer', existing: 'alice@hospital.example', requested: 'omar@hospital.example' },
          { field: 'training.epochs', existing: 300, requested: 5 },
        ],
      });

      const otherData = await factoryCli(startArgs({ commit, dataset: path.join(projectRoot, 'datasets', 'other', 'data.csv') }), idle);
      expect(otherData.code).toBe(4);
      expect(otherData.stderr).toContain(`datasetPath (existing "${DATASET}", requested "${path.join(projectRoot, 'datasets', 'other', 'data.csv')}")`);
      expect(otherData.stderr).toContain('schemaPath (existing');
    } finally {
      await suite.client.workflow.getHandle(workflowId).terminate('test done');
    }
  });

  it('attacker text sent with the real temporal CLI reaches status and trace escaped; --json carries it exactly', async () => {
    // Terminal controls the gate refuses (its refusal keeps an excerpt), and bidi controls it lets
    // through in a comment: neither may reach a reviewer's terminal raw.
    const forgedEsc = '\u001b[31mAPPROVED\u001b[0m\u001b]0;pwned\u0007\u009b2J';
    const forgedBidi = 'see invoice\u202egnp.exe \u2066admin\u2069 ok';
    const escapedBidi = 'see invoice\\u202egnp.exe \\u2066admin\\u2069 ok';
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, { riskTier: 'medium' });
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const signal = (payload: object) =>
      temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input', JSON.stringify(payload)]);

    // The medium tier requires signatures: each decision is signed with the approver's dev key.
    const signed = (approver: string, role: string, comment?: string) => signedDecision(suite.client, workflowId, { approver, role, comment });
    await signal(await signed('omar@hospital.example', 'model-owner', forgedEsc));
    await waitForStatus(suite.client, workflowId, (st) => st.refusals.length + st.approvals.length === 1);
    await signal(await signed('omar@hospital.example', 'model-owner', forgedBidi));
    await waitForStatus(suite.client, workflowId, (st) => st.approvals.some((a) => a.comment === forgedBidi));

    const human = await factoryCli(['status', workflowId]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`${workflowId}  temporal=RUNNING  stage=approval`);
    expect(human.stdout).not.toMatch(RAW_CONTROL);
    expect(human.stdout).toContain(`"${escapedBidi}"`);
    const json = JSON.parse((await factoryCli(['status', workflowId, '--json'])).stdout) as ApprovalStatus;
    expect(json.approvals.map((a) => a.comment)).toContain(forgedBidi);

    // The second role signs: the lifecycle deploys; the trace shows the comment escaped, its JSON exact.
    await signal(await signed('vera@hospital.example', 'validator'));
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome.outcome).toBe('deployed');
    const trace = await factoryCli(['trace', input.modelName]);
    expect(trace.code, trace.stderr).toBe(0);
    expect(trace.stdout).not.toMatch(RAW_CONTROL);
    expect(trace.stdout).toContain(`"${escapedBidi}"`);
    const traceJson = JSON.parse((await factoryCli(['trace', input.modelName, '--json'])).stdout) as { approvals: Array<{ comment: string | null }> };
    expect(traceJson.approvals.map((a) => a.comment)).toContain(forgedBidi);

    // A finished lifecycle: status answers from Temporal alone; approve is refused in one line.
    const done = await factoryCli(['status', workflowId, '--json']);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ workflowId, temporalStatus: 'COMPLETED', stage: 'deployed', result: { outcome: 'deployed' } });
    const late = await factoryCli(['approve', workflowId, '--as', 'omar@hospital.example', '--role', 'model-owner']);
    expect(late.code).toBe(4);
    expect(late.stderr).toMatch(new RegExp(`^error: lifecycle ${workflowId} is closed \\(COMPLETED: deployed\\)\\nnext: .+\\n$`));
  });

  it('a lifecycle failing on a missing dataset shows its root cause in start --wait and status (exit 1), and refuses approvals naming it', async () => {
    const missing = path.join(projectRoot, 'datasets', `no-such-${workers.prefix.slice(0, -1)}`, 'data.csv');
    const env = { FACTORY_TASK_QUEUE_PREFIX: workers.prefix };
    const commit = randomCommit();
    const started = await factoryCli([...startArgs({ commit, dataset: missing }), '--wait'], env);
    expect(started.code).toBe(1);
    expect(started.stderr).not.toContain('Activity task failed');
    expect(started.stderr).toMatch(/^error: lifecycle lifecycle-\S+ failed: Dataset\w*: .*(ENOENT|no such file|not found|does not exist)/im);
    expect(started.stderr).not.toMatch(STACK);
    const workflowId = `lifecycle-cli-${workers.prefix.slice(1, -1)}-${commit}`;

    const status = await factoryCli(['status', workflowId]);
    expect(status.code).toBe(1);
    // The lifecycle recorded its end (stage `failed`); the cause names the activity it failed in.
    expect(status.stdout).toContain(`${workflowId}  temporal=FAILED  stage=failed`);
    expect(status.stdout).toMatch(/cause: Dataset\w*: .*\(in activity quarantineRaw\)/);
    expect(status.stdout).toMatch(/registry: no version registered \(lifecycle\.failed\) \(agrees with Temporal\)/);
    expect(status.stderr).toMatch(/^error: lifecycle \S+ is closed \(FAILED: Dataset\w*: /);
    const statusJson = JSON.parse((await factoryCli(['status', workflowId, '--json'])).stdout);
    expect(statusJson).toMatchObject({ temporalStatus: 'FAILED', failure: { type: expect.stringMatching(/^Dataset/) } });

    const approve = await factoryCli(['approve', workflowId, '--as', 'omar@hospital.example', '--role', 'model-owner']);
    expect(approve.code).toBe(4);
    expect(approve.stderr).toMatch(/^error: lifecycle \S+ is closed \(FAILED: Dataset\w*: .*\)\nnext: fix the input named above/);
  });

  it('with its workers stopped, status answers within 5 s: RUNNING, workers not answering, exit 3', async () => {
    // Only a control worker: the lifecycle passes ingest, then waits for the GPU zone nobody serves.
    const own = new IsolatedWorkers();
    try {
      await own.start('control');
      const { workflowId } = await startTestLifecycle(suite.client, own);
      await waitForStatus(suite.client, workflowId, (st) => st.stage === 'train');
      await own.stopAll();
      await factoryCli(['status', 'lifecycle-warm-0000000']); // the bundle is current: time the answer, not a rebuild
      const t0 = Date.now();
      const r = await factoryCli(['status', workflowId]);
      const elapsed = Date.now() - t0;
      expect(r.code).toBe(3);
      expect(elapsed).toBeLessThan(5_000);
      expect(r.stdout).toContain(`${workflowId}  temporal=RUNNING  stage=train`);
      expect(r.stderr).toMatch(
        /^error: lifecycle \S+ is RUNNING but its workers are not answering .*\nnext: start or restart the workers: `npx factory dev up`/,
      );
      const approve = await factoryCli(['approve', workflowId, '--as', 'omar@hospital.example', '--role', 'model-owner']);
      expect(approve.code).toBe(3);
      expect(approve.stderr).not.toMatch(STACK);
      await suite.client.workflow.getHandle(workflowId).terminate('test done');
    } finally {
      await own.stopAll();
    }
  });

  it('approve on a missing lifecycle, or with Temporal unreachable: one line, documented exit code, no stack', async () => {
    const missing = await factoryCli(['approve', 'lifecycle-nobody-0000000', '--as', 'omar@hospital.example', '--role', 'model-owner']);
    expect(missing.code).toBe(6);
    expect(missing.stderr).toMatch(/^error: no lifecycle lifecycle-nobody-0000000\nnext: .+\n$/);
    const down = await factoryCli(['status', 'lifecycle-nobody-0000000'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^error: cannot reach Temporal at 127\.0\.0\.1:1: .*\nnext: start the stack: npx factory dev up\n$/);
  });
});
