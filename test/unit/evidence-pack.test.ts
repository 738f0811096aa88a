import { unzipSync, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, hashOf } from '../../src/audit/chain.ts';
import { sha256Hex } from '../../src/audit/canonical.ts';
import { CHECKPOINT_PAYLOAD_TYPE } from '../../src/audit/checkpoint.ts';
import { sealPack } from '../../src/evidence/build.ts';
import { PACK_FILES, type PackAuditEvent } from '../../src/evidence/format.ts';
import { VERIFY_EXIT, principalsFromAllowedSigners, verifyPack } from '../../src/evidence/verify.ts';
import { type ProvenanceFacts, buildProvenanceStatement, signProvenanceStatement } from '../../src/provenance/statement.ts';
import { signEnvelope } from '../../src/signing/dsse.ts';
import { factoryKeyFromPem, generateFactoryKeyPem } from '../../src/signing/factory-key.ts';

/**
 * The offline verifier on packs sealed here from made-up records (the exporter's own sealing code, a
 * test key): what it accepts, and each forgery it names. The real export is tested end to end in
 * test/integration/evidence-pack.test.ts.
 */
const key = factoryKeyFromPem(generateFactoryKeyPem(), 'test');
const otherKey = factoryKeyFromPem(generateFactoryKeyPem(), 'other');
const d = (c: string) => `sha256:${c.repeat(64)}`;
const WF = 'lifecycle-bc-abc1234';
const DATASET_MANIFEST = '{"dataset":"wdbc","classification":"phi","exclusions":[]}';
const facts: ProvenanceFacts = {
  artifact: { name: 'models/bc/aa/model.onnx', uri: 's3://factory-artifacts/models/bc/aa/model.onnx', digest: d('a') },
  dataset: {
    name: 'wdbc',
    rawUri: 's3://q/raw',
    rawSha256: d('b'),
    manifestUri: 's3://c/m.json',
    manifestDigest: `sha256:${sha256Hex(DATASET_MANIFEST)}`,
    certifiedUri: 's3://c/data.csv',
    certifiedSha256: d('d'),
  },
  commitSha: 'abc1234',
  imageDigest: d('e'),
  modelName: 'bc',
  riskTier: 'low',
  training: { epochs: 10, seed: 7 },
  trainerCode: { digest: d('f'), files: [] },
  trainingEnvironment: { uri: 's3://e/env.json', digest: d('0'), python: 'CPython 3.11.2', packages: 1 },
  policy: { digest: d('9'), source: 'policies/default.yaml', version: '1' },
  evaluator: { id: 'urn:ai-factory:evaluator:x', codeDigest: d('8'), files: [], taskQueue: 'gpu-onprem' },
  builder: { id: 'urn:ai-factory:builder:x', taskQueue: 'gpu-onprem', namespace: 'default' },
  workflow: { id: WF, runId: 'r1' },
  startedOn: '2026-11-27T10:00:00.000Z',
  finishedOn: '2026-11-27T10:01:00.000Z',
};
const provenance = Buffer.from(JSON.stringify(signProvenanceStatement(key, buildProvenanceStatement(facts))));

/** A chain of events: another lifecycle's interleaved with this one's, hashed as appendAuditEventsIn does. */
function chain(): PackAuditEvent[] {
  const out: PackAuditEvent[] = [];
  let prev = GENESIS_HASH;
  const kinds = ['lifecycle.started', 'other', 'model.validated', 'history.exported', 'other'];
  for (const [i, kind] of kinds.entries()) {
    const wf = kind === 'other' ? 'lifecycle-other' : WF;
    const row = {
      event_id: `${wf}/r1/${kind}-${i}`,
      workflow_id: wf,
      run_id: 'r1',
      step: `${kind}-${i}`,
      kind,
      actor: 'factory',
      payload: kind === 'history.exported' ? { runs: [{ digest: `sha256:${sha256Hex('history')}` }] } : { i },
      occurred_at: `2026-11-27T10:0${i}:00.000Z`,
      prev_hash: prev,
    };
    const hash = hashOf(row);
    out.push({ seq: String(10 + i), ...row, hash });
    prev = hash;
  }
  return out;
}

function contents(events = chain(), signWith = key): Map<string, Uint8Array> {
  const b = (s: string) => Buffer.from(s);
  const last = events.at(-1)!;
  const checkpoint = {
    type: 'ai-factory.audit-checkpoint/v1',
    chain: 'factory_test',
    seq: last.seq,
    headHash: last.hash,
    eventCount: 14,
    createdAt: '2026-11-27T11:00:00.000Z',
    keyId: signWith.keyId,
    previous: null,
    reason: 'test',
  };
  const own = events.filter((e) => e.workflow_id === WF).map((e) => e.event_id);
  return new Map<string, Uint8Array>([
    [
      PACK_FILES.version,
      b(
        JSON.stringify({
          model_name: 'bc',
          version: 3,
          artifact_digest: d('a'),
          dataset_manifest_digest: facts.dataset.manifestDigest,
          commit_sha: 'abc1234',
          policy_digest: d('9'),
          image_digest: d('e'),
          provenance_digest: `sha256:${sha256Hex(provenance)}`,
          metrics: { auc: 0.99, n: 114 },
        }),
      ),
    ],
    [PACK_FILES.provenanceEnvelope, provenance],
    [`${PACK_FILES.datasets}cc/manifest.json`, b(DATASET_MANIFEST)],
    [PACK_FILES.evaluationReport, b(JSON.stringify({ auc: 0.99, n: 114 }))],
    [PACK_FILES.approvals, b(JSON.stringify([]))],
    [PACK_FILES.auditEvents, b(`${events.map((e) => JSON.stringify(e)).join('\n')}\n`)],
    [PACK_FILES.auditCheckpoint, b(JSON.stringify(signEnvelope(signWith, CHECKPOINT_PAYLOAD_TYPE, JSON.stringify(checkpoint))))],
    [
      PACK_FILES.auditProof,
      b(JSON.stringify({ firstSeq: events[0]!.seq, lastSeq: last.seq, checkpointSeq: last.seq, chain: 'factory_test', versionEvents: own })),
    ],
    [
      PACK_FILES.historyIndex,
      b(JSON.stringify([{ runId: 'r1', status: 'COMPLETED', file: 'history/r1.json', digest: `sha256:${sha256Hex('history')}`, events: 1, uri: 's3://e/h' }])),
    ],
    ['history/r1.json', b('history')],
    [PACK_FILES.policyPack, b('version: "1"\n')],
    [PACK_FILES.policyDigest, b(`sha256:${sha256Hex('version: "1"\n')}\n`)],
    [PACK_FILES.factoryKeyPem, b(key.publicKeyPem)],
  ]);
}

const seal = (files: Map<string, Uint8Array>, signWith = key) =>
  sealPack(files, {
    model: 'bc',
    version: 3,
    workflowId: WF,
    artifactDigest: d('a'),
    exportedAt: new Date('2026-11-27T12:00:00.000Z'),
    exportedBy: 'dana@hospital.example',
    case: 'EXAM-1',
    exportWorkflowId: 'evidence-export/bc@3/x',
    key: signWith,
  }).zip;

/** Rebuilds an archive with one entry's bytes replaced (or removed, or added). */
function edit(zip: Uint8Array, name: string, bytes?: Uint8Array): Uint8Array {
  const files = unzipSync(zip);
  if (bytes) files[name] = new Uint8Array(bytes);
  else delete files[name];
  return zipSync(files);
}

describe('evidence pack: offline verification', () => {
  it('verifies a sealed pack: manifest, every file, provenance, the audit segment against the checkpoint, histories against the chain', () => {
    const zip = seal(contents());
    const v = verifyPack(zip);
    expect(v.problems).toEqual([]);
    expect(v).toMatchObject({ ok: true, exitCode: 0, model: 'bc', version: 3, case: 'EXAM-1', keyId: key.keyId, keyTrustedBy: 'pack' });
    expect(v.checked).toMatchObject({ provenance: true, histories: 1, audit: { events: 5, versionEvents: 3, checkpointSeq: '14' } });
    // The same records sealed at the same time give the same bytes (a retried export stores nothing new).
    expect(Buffer.from(seal(contents())).equals(Buffer.from(zip))).toBe(true);
    expect(verifyPack(zip, { trusted: [key.publicKey] })).toMatchObject({ ok: true, keyTrustedBy: 'given' });
  });

  it('names an altered, a missing and an unlisted file (exit 22)', () => {
    const zip = seal(contents());
    for (const name of [PACK_FILES.auditEvents, PACK_FILES.policyPack, 'history/r1.json', PACK_FILES.provenanceEnvelope]) {
      const v = verifyPack(edit(zip, name, Buffer.from('changed')));
      expect(v.exitCode, name).toBe(VERIFY_EXIT.fileDigest);
      expect(
        v.problems.filter((p) => p.class === 'fileDigest'),
        name,
      ).toEqual([expect.objectContaining({ file: name, message: expect.stringMatching(/^altered/) })]);
    }
    expect(verifyPack(edit(zip, PACK_FILES.policyPack)).problems[0]).toMatchObject({
      class: 'fileDigest',
      file: PACK_FILES.policyPack,
      message: expect.stringMatching(/missing/),
    });
    expect(verifyPack(edit(zip, 'extra.txt', Buffer.from('x'))).problems).toEqual([
      { class: 'fileDigest', file: 'extra.txt', message: 'not listed in the signed manifest' },
    ]);
  });

  it('refuses a manifest signed by another key, or rewritten (exit 21)', () => {
    expect(verifyPack(seal(contents()), { trusted: [otherKey.publicKey] }).exitCode).toBe(VERIFY_EXIT.manifestSignature);
    // A forger re-signs with a key of their own and swaps the key in the pack: only a pinned key catches it.
    const forged = contents();
    forged.set(PACK_FILES.factoryKeyPem, Buffer.from(otherKey.publicKeyPem));
    const zip = seal(forged, otherKey);
    expect(verifyPack(zip).notes.join()).toContain(otherKey.keyId);
    expect(verifyPack(zip, { trusted: [key.publicKey] }).exitCode).toBe(VERIFY_EXIT.manifestSignature);
    const rewritten = edit(
      seal(contents()),
      PACK_FILES.manifest,
      Buffer.from(
        Buffer.from(unzipSync(seal(contents()))[PACK_FILES.manifest]!)
          .toString()
          .replace('EXAM-1', 'EXAM-2'),
      ),
    );
    expect(verifyPack(rewritten).problems).toContainEqual(expect.objectContaining({ class: 'manifestSignature', file: PACK_FILES.manifest }));
  });

  it('catches, even from the key holder, an edited event, a removed event, a segment cut short of the checkpoint, and a hidden event of the version (exit 25)', () => {
    const edited = chain();
    edited[2] = { ...edited[2]!, actor: 'mallory' };
    expect(verifyPack(seal(contents(edited))).problems).toContainEqual(
      expect.objectContaining({ class: 'auditChain', message: expect.stringMatching(/edited/) }),
    );
    const removed = chain().filter((_, i) => i !== 1);
    expect(verifyPack(seal(contents(removed))).problems).toContainEqual(
      expect.objectContaining({ class: 'auditChain', message: expect.stringMatching(/does not chain/) }),
    );
    const cut = contents();
    const events = chain();
    cut.set(
      PACK_FILES.auditEvents,
      Buffer.from(
        `${events
          .slice(0, -1)
          .map((e) => JSON.stringify(e))
          .join('\n')}\n`,
      ),
    );
    expect(verifyPack(seal(cut)).problems).toContainEqual(
      expect.objectContaining({ class: 'auditChain', message: expect.stringMatching(/signed checkpoint names seq 14/) }),
    );
    const hidden = contents();
    hidden.set(
      PACK_FILES.auditProof,
      Buffer.from(JSON.stringify({ firstSeq: '10', lastSeq: '14', checkpointSeq: '14', chain: 'factory_test', versionEvents: [events[0]!.event_id] })),
    );
    const v = verifyPack(seal(hidden));
    expect(v.exitCode).toBe(VERIFY_EXIT.auditChain);
    expect(v.problems.map((p) => p.message).join()).toMatch(/is in the segment but not named by the proof/);
    // A checkpoint signed by another key does not anchor anything.
    expect(verifyPack(seal(contents(chain(), otherKey))).problems).toContainEqual(
      expect.objectContaining({ class: 'auditChain', file: PACK_FILES.auditCheckpoint }),
    );
  });

  it('catches provenance for another artifact (exit 23) and a history the chain did not record (exit 26)', () => {
    const other = contents();
    other.set(
      PACK_FILES.provenanceEnvelope,
      Buffer.from(JSON.stringify(signProvenanceStatement(key, buildProvenanceStatement({ ...facts, artifact: { ...facts.artifact, digest: d('7') } })))),
    );
    expect(verifyPack(seal(other)).exitCode).toBe(VERIFY_EXIT.provenance);
    const history = contents();
    history.set('history/r1.json', Buffer.from('another history'));
    history.set(
      PACK_FILES.historyIndex,
      Buffer.from(
        JSON.stringify([
          { runId: 'r1', status: 'COMPLETED', file: 'history/r1.json', digest: `sha256:${sha256Hex('another history')}`, events: 1, uri: 's3://e/h' },
        ]),
      ),
    );
    const v = verifyPack(seal(history));
    expect(v.exitCode).toBe(VERIFY_EXIT.records);
    expect(v.problems[0]).toMatchObject({ file: 'history/r1.json', message: expect.stringMatching(/in no history.exported event/) });
  });

  it("catches a dataset manifest that is not the version's, and a report whose metrics are not the registry's (exit 26)", () => {
    const dataset = contents();
    dataset.set(`${PACK_FILES.datasets}cc/manifest.json`, Buffer.from('{"dataset":"wdbc","classification":"public","exclusions":[]}'));
    expect(verifyPack(seal(dataset)).problems).toEqual([
      expect.objectContaining({ class: 'records', file: `${PACK_FILES.datasets}cc/manifest.json`, message: expect.stringMatching(/no dataset manifest/) }),
    ]);
    const report = contents();
    report.set(PACK_FILES.evaluationReport, Buffer.from(JSON.stringify({ auc: 0.999, n: 114 })));
    expect(verifyPack(seal(report)).problems).toEqual([
      { class: 'records', file: PACK_FILES.evaluationReport, message: "the report's auc is 0.999, the registry recorded 0.99" },
    ]);
  });

  it('refuses what is not a pack, and archives over its limits, without reading them whole (exit 20)', () => {
    expect(verifyPack(Buffer.from('not a zip')).exitCode).toBe(VERIFY_EXIT.unreadable);
    expect(verifyPack(zipSync({ 'a.txt': Buffer.from('x') })).problems[0]!.message).toMatch(/manifest.json is missing/);
    // An entry that says it unpacks to 2 GiB is refused before it is inflated (the size its header declares).
    const bomb = Buffer.from(zipSync({ 'manifest.json': Buffer.from('{}') }));
    const central = bomb.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bomb.writeUInt32LE(0x7fffffff, central + 24);
    bomb.writeUInt32LE(0x7fffffff, 22);
    expect(verifyPack(bomb).problems[0]!.message).toMatch(/unpacks to 2147483647 bytes, more than/);
    const twice = Buffer.from(zipSync({ 'manifest.json': Buffer.from('{}'), 'manifest.jsoN': Buffer.from('{}') }));
    twice.write('manifest.json', twice.lastIndexOf(Buffer.from('manifest.jsoN')), 'latin1');
    twice.write('manifest.json', twice.indexOf(Buffer.from('manifest.jsoN')), 'latin1');
    expect(verifyPack(twice).problems[0]!.message).toMatch(/holds "manifest.json" twice/);
  });

  it('reads allowed_signers lines as principals and keys', () => {
    expect(
      principalsFromAllowedSigners('dana@x namespaces="factory-approval" ssh-ed25519 AAAA\n# c\nsam@x,max@x namespaces="factory-approval" ssh-ed25519 BBBB\n'),
    ).toEqual([
      { id: 'dana@x', keys: ['ssh-ed25519 AAAA'] },
      { id: 'sam@x', keys: ['ssh-ed25519 BBBB'] },
      { id: 'max@x', keys: ['ssh-ed25519 BBBB'] },
    ]);
  });
});
