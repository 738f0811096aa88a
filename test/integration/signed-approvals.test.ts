import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { principalKeyFile } from '../../src/signing/ssh-keygen.ts';
import { env } from '../helpers.ts';
import { makeSshKey } from '../signing.ts';
import { factoryCli, lifecycleSuite, signedDecision, startTestLifecycle, temporalCli, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;
const scratch = fs.mkdtempSync(path.join(env.FACTORY_HOME, 'signed-approvals-'));
const signal = (workflowId: string, name: string, input: unknown) =>
  temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', name, '--input', JSON.stringify(input)]);
const decisionsOf = (workflowId: string) =>
  db.selectFrom('approvals').selectAll().where('workflow_id', '=', workflowId).orderBy('decided_at').orderBy('id').execute();
/** `ssh-keygen -l`'s fingerprint of a principal's dev key: the outside tool's view of the key. */
const fingerprintOf = (principal: string) =>
  execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${principalKeyFile(env.FACTORY_HOME, principal)}.pub`], { encoding: 'utf8' }).split(' ')[1];

describe('authenticated approvals (OpenSSH signatures; real Temporal, temporal CLI, Postgres, ssh-keygen)', () => {
  it('refuses forged and replayed approvals with their reasons, records them, and deploys on signed ones (one sent as the Web UI sends it)', async () => {
    const { client } = suite;
    const { workflowId } = await startTestLifecycle(client, workers, { riskTier: 'medium' });
    const s = await waitForStatus(client, workflowId, (st) => st.stage === 'approval');
    const omar = { approver: 'omar@hospital.example', role: 'model-owner' };
    const forged: Array<[string, unknown, RegExp]> = [
      ['right name, no signature', { ...omar, meaning: 'approval', modelDigest: s.modelDigest }, /^unsigned: this risk tier requires a signed approve/],
      [
        "right name, another principal's key",
        await signedDecision(client, workflowId, { ...omar, keyFile: principalKeyFile(env.FACTORY_HOME, 'vera@hospital.example') }),
        /^signed by the key SHA256:\S+, which is not one of omar@hospital\.example's keys in the policy pack$/,
      ],
      [
        "right name, nobody's key",
        await signedDecision(client, workflowId, { ...omar, keyFile: makeSshKey().file }),
        /which is not one of omar@hospital\.example's keys/,
      ],
      [
        'a signature replayed from another lifecycle',
        await signedDecision(client, workflowId, { ...omar, statement: { workflowId: `${workflowId}-previous` } }),
        /^replayed or mismatched statement: it was signed for workflow-id/,
      ],
      [
        'a signature replayed from another version',
        await signedDecision(client, workflowId, { ...omar, statement: { version: s.version! + 1 } }),
        /signed for version "\d+", this decision's is "\d+"/,
      ],
      [
        'a signature replayed from another artifact',
        await signedDecision(client, workflowId, { ...omar, statement: { artifactDigest: `sha256:${'0'.repeat(64)}` } }),
        /signed for artifact-digest "sha256:0{64}"/,
      ],
      [
        'a signature replayed from another role',
        await signedDecision(client, workflowId, { ...omar, statement: { role: 'business' } }),
        /signed for role "business", this decision's is "model-owner"/,
      ],
      [
        'a statement signed in the future',
        await signedDecision(client, workflowId, { ...omar, signedAt: new Date(Date.now() + 3_600_000).toISOString() }),
        /is in the future/,
      ],
    ];
    for (const [i, [what, payload, reason]] of forged.entries()) {
      await signal(workflowId, 'approve', payload);
      const st = await waitForStatus(client, workflowId, (x) => x.refusals.length === i + 1);
      expect(st.refusals[i]!.reason, what).toMatch(reason);
      expect(st.pendingRoles, what).toEqual(['model-owner', 'validator']);
    }

    // Omar signs with his own key through the CLI (his dev key by default), withdraws, and the same
    // signed payload sent again is refused: a signature counts once in a lifecycle.
    const first = await signedDecision(client, workflowId, omar);
    await signal(workflowId, 'approve', first);
    await waitForStatus(client, workflowId, (x) => x.approvals.length === 1);
    await signal(workflowId, 'withdraw', { ...omar, meaning: 'review', modelDigest: s.modelDigest, comment: 'rechecking the split' });
    await waitForStatus(client, workflowId, (x) => x.counts?.withdrawn === 1);
    await signal(workflowId, 'approve', first);
    const replayed = await waitForStatus(client, workflowId, (x) => x.refusals.length === forged.length + 1);
    expect(replayed.refusals.at(-1)!.reason).toBe('replayed signature: this signature was already used once in this lifecycle');
    const cli = await factoryCli(['approve', workflowId, '--as', omar.approver, '--role', omar.role, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    // `status` shows the approval in force with the key that signed it and that it verified.
    const status = await factoryCli(['status', workflowId]);
    expect(status.stdout).toContain(
      `Omar Haddad <omar@hospital.example> approve model-owner (approval) via update  key ${fingerprintOf(omar.approver)} signature verified`,
    );

    // The Web UI path: the approver prints the statement, signs it with ssh-keygen, gets the JSON, and
    // sends it as the signal `approve` (here with the real temporal CLI, which sends what the UI sends).
    const vera = principalKeyFile(env.FACTORY_HOME, 'vera@hospital.example');
    const printed = await factoryCli(['approval-payload', workflowId, '--role', 'validator', '--as', 'vera@hospital.example']);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^factory-approval-statement v1\nworkflow-id: /);
    const statementFile = path.join(scratch, 'statement.txt');
    fs.writeFileSync(statementFile, printed.stdout);
    execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-n', 'factory-approval', '-f', vera, statementFile], { stdio: 'ignore' });
    const json = await factoryCli([
      'approval-payload',
      workflowId,
      '--role',
      'validator',
      '--as',
      'vera@hospital.example',
      '--statement',
      statementFile,
      '--signature',
      `${statementFile}.sig`,
    ]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toContain('"Send a Signal", name: approve');
    await temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input', json.stdout.trim()]);
    const outcome = (await client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome.outcome).toBe('deployed');

    // Every refusal is a row with its reason and an audit event; accepted ones carry their signature.
    const rows = await decisionsOf(workflowId);
    const refused = rows.filter((r) => !r.accepted);
    expect(refused.map((r) => r.refusal_reason)).toEqual(replayed.refusals.map((r) => r.reason));
    const refusedEvents = await db
      .selectFrom('audit_events')
      .select('kind')
      .where('workflow_id', '=', workflowId)
      .where('kind', '=', 'approval.refused')
      .execute();
    expect(refusedEvents).toHaveLength(forged.length + 1);
    const accepted = rows.filter((r) => r.accepted && r.decision === 'approve');
    expect(accepted.map((r) => [r.approver, r.key_fingerprint, r.signature_verified])).toEqual([
      [omar.approver, fingerprintOf(omar.approver), true],
      [omar.approver, fingerprintOf(omar.approver), true],
      ['vera@hospital.example', fingerprintOf('vera@hospital.example'), true],
    ]);
    const veraRow = accepted.at(-1)!;
    expect(veraRow.signed_statement).toBe(printed.stdout);
    expect(veraRow.public_key).toBe(fs.readFileSync(`${vera}.pub`, 'utf8').split(' ').slice(0, 2).join(' '));

    // A tool we did not write verifies a stored signature over its stored statement, against the
    // allowed_signers view of the pack.
    const signers = path.join(scratch, 'allowed_signers');
    const view = await factoryCli(['policy', 'allowed-signers']);
    expect(view.code, view.stderr).toBe(0);
    fs.writeFileSync(signers, view.stdout);
    fs.writeFileSync(path.join(scratch, 'stored.sig'), veraRow.signature!);
    const good = execFileSync(
      'ssh-keygen',
      ['-Y', 'verify', '-f', signers, '-I', 'vera@hospital.example', '-n', 'factory-approval', '-s', path.join(scratch, 'stored.sig')],
      { input: veraRow.signed_statement!, encoding: 'utf8' },
    );
    expect(good).toContain('Good "factory-approval" signature for vera@hospital.example');
    // ...and refuses it for another identity.
    expect(() =>
      execFileSync(
        'ssh-keygen',
        ['-Y', 'verify', '-f', signers, '-I', 'omar@hospital.example', '-n', 'factory-approval', '-s', path.join(scratch, 'stored.sig')],
        {
          input: veraRow.signed_statement!,
          stdio: 'pipe',
        },
      ),
    ).toThrow();

    // The trace shows, per approval, name, UTC time, meaning, key fingerprint and that it verified.
    const traced = await factoryCli(['trace', `${s.modelName}@${s.version}`, '--json']);
    expect(traced.code, traced.stderr).toBe(0);
    const trace = JSON.parse(traced.stdout) as ModelTrace;
    const approvals = trace.approvals.filter((a) => a.decision === 'approve');
    expect(approvals.map((a) => [a.name, a.meaning, a.keyFingerprint, a.signatureVerified])).toEqual([
      ['Omar Haddad', 'approval', fingerprintOf(omar.approver), true],
      ['Omar Haddad', 'approval', fingerprintOf(omar.approver), true],
      ['Vera Lindqvist', 'approval', fingerprintOf('vera@hospital.example'), true],
    ]);
    for (const a of approvals) expect(a.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const human = await factoryCli(['trace', `${s.modelName}@${s.version}`]);
    expect(human.stdout).toContain(`Vera Lindqvist <vera@hospital.example>  role=validator  meaning=approval  approved`);
    expect(human.stdout).toContain(`key ${fingerprintOf('vera@hospital.example')} signature verified`);

    // `audit verify` re-verifies every stored signature; an edited statement is named (exit 7).
    const verified = await factoryCli(['audit', 'verify', '--json']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout).signatures).toMatchObject({ ok: true, checked: expect.any(Number) });
    expect(JSON.parse(verified.stdout).signatures.checked).toBeGreaterThanOrEqual(3);
    const asSuperuser = (q: ReturnType<typeof sql>) =>
      db.transaction().execute(async (tx) => {
        await sql`ALTER TABLE approvals DISABLE TRIGGER USER`.execute(tx);
        await q.execute(tx);
        await sql`ALTER TABLE approvals ENABLE TRIGGER USER`.execute(tx);
      });
    const edited = veraRow.signed_statement!.replace(/version: \d+/, 'version: 999');
    await asSuperuser(sql`UPDATE approvals SET signed_statement = ${edited} WHERE id = ${veraRow.id}`);
    try {
      const tampered = await factoryCli(['audit', 'verify', '--json']);
      expect(tampered.code).toBe(7);
      expect(JSON.parse(tampered.stdout).signatures.problems).toEqual([
        { id: veraRow.id, approver: 'vera@hospital.example', reason: expect.stringMatching(/^signature does not verify over the stored statement/) },
      ]);
      const said = await factoryCli(['audit', 'verify']);
      expect(said.stdout).toContain(`APPROVAL SIGNATURES THAT DO NOT VERIFY: 1\n  approvals ${veraRow.id} (vera@hospital.example): signature does not verify`);
    } finally {
      await asSuperuser(sql`UPDATE approvals SET signed_statement = ${veraRow.signed_statement} WHERE id = ${veraRow.id}`);
    }
    expect((await factoryCli(['audit', 'verify'])).code).toBe(0);
    console.log(`[fixture] forged-refused-then-deployed: ${workflowId}`);
  });

  it('a signed approval by each required role through `factory approve` deploys the candidate', async () => {
    const { client } = suite;
    const { workflowId } = await startTestLifecycle(client, workers, { riskTier: 'medium' });
    await waitForStatus(client, workflowId, (st) => st.stage === 'approval');
    for (const [who, role] of [
      ['omar@hospital.example', 'model-owner'],
      ['vera@hospital.example', 'validator'],
    ] as const) {
      const r = await factoryCli(['approve', workflowId, '--as', who, '--role', role, '--comment', 'reviewed', '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(((await client.workflow.getHandle(workflowId).result()) as LifecycleOutcome).outcome).toBe('deployed');
    console.log(`[fixture] signed-approval-deployed: ${workflowId}`);
  });
});
