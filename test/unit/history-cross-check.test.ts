import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { type ProjectionRows, type RunHistoryJson, crossCheck, historyFacts, isCheckedKind } from '../../src/history/cross-check.ts';

const fixture = (name: string): RunHistoryJson[] => [
  { runId: 'run-1', history: JSON.parse(fs.readFileSync(path.join(projectRoot, 'test', 'fixtures', name), 'utf8')) as RunHistoryJson['history'] },
];

/** The projection a faithful registry would hold for these histories. */
function projectionOf(runs: RunHistoryJson[]): ProjectionRows {
  const f = historyFacts(runs);
  return {
    approvals: [...f.decisions.values()]
      .filter((d) => d.completed)
      .map(({ record: r }) => ({ id: r.id, decision: r.decision, approver: r.approver, role: r.role, model_digest: r.modelDigest, accepted: r.accepted })),
    modelVersions: [...f.registered].map(([id, r]) => ({ id, version: r.version, state: f.states.get(id)!, run_id: r.runId })),
    deployments: [...f.deployments]
      .filter(([, d]) => d.completed)
      .map(([id, d]) => ({
        id,
        model_version_id: d.modelVersionId,
        triton_model: d.tritonModel,
        triton_version: d.tritonVersion,
        artifact_digest: d.artifactDigest,
      })),
    auditEvents: [...f.audit].filter(([, a]) => a.completed && isCheckedKind(a.kind)).map(([event_id, a]) => ({ event_id, kind: a.kind, actor: a.actor })),
  };
}

describe('audit verify --history: the projection against the history (pure)', () => {
  const runs = fixture('lifecycle-high-risk-with-refusals.json');
  const workflowId = 'wf';

  it('reads decisions (accepted and refused), the version, its states, the deployment and the audit events out of a real history', () => {
    const f = historyFacts(runs);
    const decisions = [...f.decisions.values()];
    expect(decisions.some((d) => d.record.accepted)).toBe(true);
    expect(decisions.some((d) => !d.record.accepted)).toBe(true);
    expect(f.received.length).toBeGreaterThanOrEqual(decisions.length);
    expect(f.registered.size).toBe(1);
    expect([...f.states.values()]).toEqual(['deployed']);
    expect(f.deployments.size).toBe(1);
    expect([...f.audit.values()].map((a) => a.kind)).toEqual(
      expect.arrayContaining(['model.registered', 'model.approved', 'model.deployed', 'approval.approved', 'approval.refused']),
    );
  });

  it('a faithful projection has no discrepancy', () => {
    expect(crossCheck(workflowId, runs, projectionOf(runs))).toEqual([]);
  });

  it('names an approval inserted into the projection, one missing from it, a changed field and a changed state', () => {
    const rows = projectionOf(runs);
    const [first, ...rest] = rows.approvals;
    const forged = { ...first!, id: 'wf/run/decision-999', approver: 'mallory@hospital.example' };
    const tampered: ProjectionRows = {
      ...rows,
      approvals: [forged, { ...rest[0]!, role: 'compliance-forged' }, ...rest.slice(1)],
      modelVersions: rows.modelVersions.map((m) => ({ ...m, state: 'approved' as const })),
    };
    const found = crossCheck(workflowId, runs, tampered);
    expect(found).toContainEqual(expect.objectContaining({ kind: 'not-in-history', table: 'approvals', id: 'wf/run/decision-999' }));
    expect(found).toContainEqual(expect.objectContaining({ kind: 'not-in-projection', table: 'approvals', id: first!.id }));
    expect(found).toContainEqual(expect.objectContaining({ kind: 'differs', table: 'approvals', id: rest[0]!.id, reason: expect.stringContaining('role') }));
    expect(found).toContainEqual(
      expect.objectContaining({ kind: 'differs', table: 'model_versions', reason: 'state is approved in the registry, the history leads to deployed' }),
    );
  });

  it('names a deployment and an audit event that the history does not have', () => {
    const rows = projectionOf(runs);
    const found = crossCheck(workflowId, runs, {
      ...rows,
      deployments: [...rows.deployments, { id: 'wf/x/deployment', model_version_id: 1, triton_model: 'm', triton_version: 9, artifact_digest: 'sha256:00' }],
      auditEvents: [...rows.auditEvents, { event_id: 'wf/x/model.deployed', kind: 'model.deployed', actor: 'factory' }],
    });
    expect(found.map((d) => [d.kind, d.table, d.id])).toEqual([
      ['not-in-history', 'deployments', 'wf/x/deployment'],
      ['not-in-history', 'audit_events', 'wf/x/model.deployed'],
    ]);
  });

  it('compares a server-stamped principal with the approver a signal names', () => {
    const copy = structuredClone(runs);
    const events = copy[0]!.history.events!;
    const signal = events.find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'approve')!;
    const approver = historyFacts(copy).received.find((r) => r.eventId === String(signal.eventId))!.approver!;
    signal.principal = { type: 'jwt', name: approver.toUpperCase() };
    expect(crossCheck(workflowId, copy, projectionOf(runs))).toEqual([]);
    signal.principal = { type: 'jwt', name: 'mallory@hospital.example' };
    expect(crossCheck(workflowId, copy, projectionOf(runs))).toEqual([
      expect.objectContaining({
        kind: 'principal-mismatch',
        table: 'history',
        id: `run-1#${signal.eventId}`,
        reason: `signal approve names approver ${approver}, but the server authenticated the caller as jwt:mallory@hospital.example`,
      }),
    ]);
  });

  it('follows a version through every run of a continued-as-new chain and a failed lifecycle to its end', () => {
    const can = fixture('lifecycle-bounded-continued-as-new-at-gate.json');
    expect(crossCheck(workflowId, can, projectionOf(can))).toEqual([]);
    const failed = fixture('lifecycle-terminal-failed-at-deploy.json');
    expect([...historyFacts(failed).states.values()]).toEqual(['failed']);
    expect(crossCheck(workflowId, failed, projectionOf(failed))).toEqual([]);
  });
});
