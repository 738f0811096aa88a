import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import type { EvidenceExportSummary } from '../../src/domain/evidence.ts';
import type { InventoryEntry } from '../../src/inventory/inventory.ts';
import type { PackVerdict } from '../../src/evidence/verify.ts';
import { loadFactoryKey } from '../../src/signing/factory-key.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { factoryCli, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

const run = promisify(execFile);
const suite = lifecycleSuite();
const { db, workers } = suite;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-evidence-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** The CLI as an examiner runs it: a clean directory, no stack variables, nothing but PATH and HOME. */
async function examinerCli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(projectRoot, 'bin', 'factory.mjs'), ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A copy of the pack with one file's bytes changed (the archive rebuilt around it, as a forger would). */
function alter(pack: string, file: string, to: string, change: (s: string) => string): void {
  const files = unzipSync(fs.readFileSync(pack));
  if (!files[file]) throw new Error(`${file} is not in the pack`);
  const before = Buffer.from(files[file]).toString('utf8');
  const after = change(before);
  if (after === before) throw new Error(`the change left ${file} as it was`);
  files[file] = Buffer.from(after);
  fs.writeFileSync(to, zipSync(files));
}

describe('evidence pack and model inventory (real Temporal, PostgreSQL, S3, Triton; outside verifiers)', () => {
  it('exports a signed medium-risk version, verifies the pack offline, names an altered file, checks it with ssh-keygen and securesystemslib, and lists it in the inventory with its due date and overdue', async () => {
    const { client } = suite;
    const model = `bc-${workers.prefix.slice(1, -1)}-ev`;
    const { workflowId } = await startTestLifecycle(client, workers, { riskTier: 'medium', modelName: model });
    await waitForStatus(client, workflowId, (s) => s.stage === 'approval', 400_000);
    // Signed approvals through the CLI, with the principals' dev keys (what `factory approve` does by default).
    for (const [as, role] of [
      ['omar@hospital.example', 'model-owner'],
      ['vera@hospital.example', 'validator'],
    ]) {
      const r = await factoryCli(['approve', workflowId, '--as', as!, '--role', role!, '--json'], { FACTORY_TASK_QUEUE_PREFIX: workers.prefix });
      expect(r.code, r.stderr).toBe(0);
    }
    const outcome = (await client.workflow.getHandle(workflowId).result()) as { outcome: string; version: number };
    expect(outcome.outcome).toBe('deployed');
    const mv = await db.selectFrom('model_versions').selectAll().where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    // The archiver exports the history once the lifecycle has closed: wait for it, so the pack holds it.
    await waitFor(
      'the history export',
      async () => (await db.selectFrom('history_exports').select('run_id').where('workflow_id', '=', workflowId).executeTakeFirst()) ?? undefined,
      120_000,
      500,
    );

    // Export, as the examiner's liaison: a workflow, recorded with who and which case.
    const packFile = path.join(scratch, 'pack.zip');
    const exported = await factoryCli(
      ['evidence', 'export', `${model}@${mv.version}`, '--out', packFile, '--case', 'EXAM-2026-11', '--as', 'dana@hospital.example', '--json'],
      {
        FACTORY_TASK_QUEUE_PREFIX: workers.prefix,
      },
    );
    expect(exported.code, exported.stderr).toBe(0);
    const summary = JSON.parse(exported.stdout) as EvidenceExportSummary & { out: string };
    expect(summary).toMatchObject({ model, version: mv.version, workflowId, case: 'EXAM-2026-11', actor: 'dana@hospital.example', out: packFile });
    const event = await db.selectFrom('audit_events').selectAll().where('event_id', '=', summary.auditEventId).executeTakeFirstOrThrow();
    expect(event.kind).toBe('evidence.exported');
    expect(event.actor).toBe('dana@hospital.example');
    expect(event.payload).toMatchObject({ model, version: mv.version, case: 'EXAM-2026-11', digest: summary.digest, lifecycleWorkflowId: workflowId });

    // No worker on the queue: the CLI gives up after --timeout with exit 3 and the next step (the workflow goes on; ended here).
    const stalled = await factoryCli(['evidence', 'export', `${model}@${mv.version}`, '--out', path.join(scratch, 'never.zip'), '--timeout', '2'], {
      FACTORY_TASK_QUEUE_PREFIX: `${workers.prefix}nobody-`,
    });
    expect(stalled.code, stalled.stderr).toBe(3);
    expect(stalled.stderr).toMatch(/did not finish within 2 s \(it goes on\)\nnext: check the workers/);
    const stalledId = /the export (\S+) did not finish/.exec(stalled.stderr)![1]!;
    await client.workflow.getHandle(stalledId).terminate('test: no worker polls this queue');
    expect(fs.existsSync(path.join(scratch, 'never.zip'))).toBe(false);

    // Verify in a clean directory without the stack: the CLI with a scrubbed environment.
    const clean = fs.mkdtempSync(path.join(scratch, 'examiner-'));
    fs.copyFileSync(packFile, path.join(clean, 'pack.zip'));
    const ok = await examinerCli(['evidence', 'verify', 'pack.zip', '--json'], clean);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const verdict = JSON.parse(ok.stdout) as PackVerdict;
    expect(verdict).toMatchObject({ ok: true, model, version: mv.version, keyTrustedBy: 'pack', problems: [] });
    expect(verdict.checked.provenance).toBe(true);
    expect(verdict.checked.approvals).toMatchObject({ signed: 2, againstPack: 2 });
    expect(verdict.checked.histories).toBeGreaterThanOrEqual(1);
    expect(verdict.checked.audit.versionEvents).toBe(
      Number((await db.selectFrom('audit_events').select(db.fn.countAll().as('n')).where('workflow_id', '=', workflowId).executeTakeFirstOrThrow()).n),
    );
    const human = await examinerCli(['evidence', 'verify', 'pack.zip'], clean);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/VERIFIED/);

    // The factory's published key pins the signer; another key is refused (exit 21).
    const key = loadFactoryKey({
      FACTORY_HOME: env.FACTORY_HOME,
      ...(process.env.FACTORY_SIGNING_KEY_FILE ? { FACTORY_SIGNING_KEY_FILE: process.env.FACTORY_SIGNING_KEY_FILE } : {}),
    });
    fs.writeFileSync(path.join(clean, 'factory.pub.pem'), key.publicKeyPem);
    const pinned = await examinerCli(['evidence', 'verify', 'pack.zip', '--trusted-key', 'factory.pub.pem', '--json'], clean);
    expect(pinned.code, pinned.stdout).toBe(0);
    expect(JSON.parse(pinned.stdout)).toMatchObject({ keyTrustedBy: 'given', keyId: key.keyId });
    const { generateKeyPairSync } = await import('node:crypto');
    fs.writeFileSync(path.join(clean, 'other.pub.pem'), generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString());
    const wrongKey = await examinerCli(['evidence', 'verify', 'pack.zip', '--trusted-key', 'other.pub.pem', '--json'], clean);
    expect(wrongKey.code).toBe(21);

    // Any file altered fails verify naming it: an approval's comment, the evaluation report, one audit event.
    for (const [file, change] of [
      ['approvals/approvals.json', (s: string) => s.replace('"accepted": false', '"accepted": true').replace('vera@hospital.example', 'max@hospital.example')],
      ['evaluation/report.json', (s: string) => s.replace(/"auc":\s*[0-9.]+/, '"auc": 0.999')],
      ['audit/events.jsonl', (s: string) => s.replace('"kind":"model.validated"', '"kind":"model.deployed"')],
    ] as const) {
      const forged = path.join(clean, 'forged.zip');
      alter(packFile, file, forged, change);
      const bad = await examinerCli(['evidence', 'verify', 'forged.zip', '--json'], clean);
      expect(bad.code, `${file}: ${bad.stdout}`).toBe(22);
      const v = JSON.parse(bad.stdout) as PackVerdict;
      expect(v.problems.filter((p) => p.class === 'fileDigest').map((p) => p.file)).toEqual([file]);
      const said = await examinerCli(['evidence', 'verify', 'forged.zip'], clean);
      expect(said.stdout).toContain(`fileDigest ${file}: altered`);
    }
    // A forger who also rewrites the manifest cannot sign it: the manifest is named (exit 21).
    const forged = path.join(clean, 'forged-manifest.zip');
    const files = unzipSync(fs.readFileSync(packFile));
    files['manifest.json'] = Buffer.from(Buffer.from(files['manifest.json']!).toString('utf8').replace('EXAM-2026-11', 'EXAM-0000-00'));
    fs.writeFileSync(forged, zipSync(files));
    const unsigned = await examinerCli(['evidence', 'verify', 'forged-manifest.zip', '--json'], clean);
    expect(unsigned.code).toBe(21);
    expect((JSON.parse(unsigned.stdout) as PackVerdict).problems.map((p) => p.file)).toContain('manifest.json');

    // Standard tools on the pack's own files: ssh-keygen for each signed approval, securesystemslib and in-toto for the provenance.
    const dir = path.join(clean, 'unzipped');
    for (const [name, bytes] of Object.entries(unzipSync(fs.readFileSync(packFile)))) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), bytes);
    }
    // Related records by table: the version's live gateway route; never the request log (or its monthly partitions).
    expect(fs.readdirSync(path.join(dir, 'records'))).toEqual(['gateway_routes.json']);
    const approvals = JSON.parse(fs.readFileSync(path.join(dir, 'approvals', 'approvals.json'), 'utf8')) as Array<{
      approver: string;
      statementFile?: string;
      signatureFile?: string;
    }>;
    const signed = approvals.filter((a) => a.signatureFile);
    expect(signed).toHaveLength(2);
    for (const a of signed) {
      const { stdout } = await run(
        'sh',
        ['-c', `ssh-keygen -Y verify -f keys/allowed_signers -I "$1" -n factory-approval -s "$2" < "$3"`, 'sh', a.approver, a.signatureFile!, a.statementFile!],
        { cwd: dir },
      );
      expect(stdout).toContain(`Good "factory-approval" signature for ${a.approver}`);
    }
    const hex = fs.readFileSync(path.join(dir, 'keys', 'factory-signing.pub.hex'), 'utf8').trim();
    const { stdout: prov } = await run(venvPaths(env).python, [
      path.join(projectRoot, 'test', 'verifiers', 'verify_provenance.py'),
      path.join(dir, 'provenance', 'provenance.dsse.json'),
      hex,
    ]);
    expect((JSON.parse(prov) as { subject: Array<{ sha256: string }> }).subject.map((s) => `sha256:${s.sha256}`)).toContain(mv.artifact_digest);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { files: Array<{ path: string; sha256: string }> };
    const sums = manifest.files.map((f) => `${f.sha256}  ${f.path}`).join('\n');
    fs.writeFileSync(path.join(dir, 'SHA256SUMS'), `${sums}\n`);
    await run('sha256sum', ['--check', '--quiet', 'SHA256SUMS'], { cwd: dir });

    // The inventory: the deployed version with its due date from the pack (medium: 730 days after validation) …
    const inv = await factoryCli(['inventory', '--model', model, '--json']);
    expect(inv.code, inv.stderr).toBe(0);
    const listed = (JSON.parse(inv.stdout) as { versions: InventoryEntry[] }).versions;
    expect(listed).toHaveLength(1);
    const entry = listed[0]!;
    expect(entry).toMatchObject({
      model,
      version: mv.version,
      state: 'deployed',
      riskTier: 'medium',
      owner: 'omar@hospital.example',
      overdue: false,
      revalidateEvery: '730d',
    });
    const validated = await db
      .selectFrom('audit_events')
      .select('occurred_at')
      .where('workflow_id', '=', workflowId)
      .where('kind', '=', 'model.validated')
      .executeTakeFirstOrThrow();
    expect(entry.lastValidatedAt).toBe(new Date(validated.occurred_at).toISOString());
    expect(entry.revalidationDueAt).toBe(new Date(Date.parse(validated.occurred_at) + 730 * 86_400_000).toISOString());
    // … and overdue under a pack whose medium tier revalidates every second (forced through the pack, not the rows).
    const tight = path.join(scratch, 'tight-revalidation.yaml');
    fs.writeFileSync(tight, stackPolicyText().replace('revalidateEvery: 730d', 'revalidateEvery: 1s'));
    const overdue = await factoryCli(['inventory', '--overdue', '--model', model, '--json'], { FACTORY_POLICY_PACK: tight });
    expect(overdue.code, overdue.stderr).toBe(0);
    const late = (JSON.parse(overdue.stdout) as { versions: InventoryEntry[]; overdue: number }).versions;
    expect(late.map((v) => [v.version, v.overdue, v.revalidateEvery])).toEqual([[mv.version, true, '1s']]);
    const text = await factoryCli(['inventory', '--model', model], { FACTORY_POLICY_PACK: tight });
    expect(text.stdout).toMatch(new RegExp(`deployed \\(1\\)\\n  ${model}@${mv.version}  tier=medium  owner=omar@hospital.example .*OVERDUE by 0 d`));
  }, 600_000);
});
