import { describe, expect, it } from 'vitest';
import { byRole } from '../../src/console/data.ts';
import { lineageNodes, renderLineageSvg } from '../../src/console/lineage.ts';
import { approvalsPage, auditPage, inventoryPage, kpisPage } from '../../src/console/pages.ts';
import { KPI_IDS, type Kpi, type KpiReport } from '../../src/domain/kpi.ts';
import { temporalWorkflowUrl } from '../../src/console/server.ts';
import type { InventoryEntry } from '../../src/inventory/inventory.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';

const HOSTILE = '<script>alert("x")</script>\u202e';

function trace(over: Partial<ModelTrace> = {}): ModelTrace {
  return {
    model: {
      name: 'bcc',
      version: 3,
      state: 'deployed',
      riskTier: 'high',
      artifactDigest: 'sha256:' + 'a'.repeat(64),
      artifactUri: 's3://artifacts/bcc/3/model.onnx',
      registeredAt: '2026-11-20T10:00:00.000Z',
      workflowId: 'lifecycle-bcc-3',
    },
    code: { commitSha: 'c0ffee'.repeat(6), imageDigest: 'sha256:' + 'b'.repeat(64), developer: HOSTILE, requester: 'ci@hospital.example' },
    data: {
      name: HOSTILE,
      rawUri: 's3://raw/wdbc.csv',
      rawSha256: 'sha256:' + 'c'.repeat(64),
      manifestDigest: 'sha256:' + 'd'.repeat(64),
      manifestUri: 's3://certified/m.json',
      certifiedUri: 's3://certified/d.csv',
      rowsTotal: 572,
      rowsAccepted: 569,
      rowsExcluded: 3,
      exclusions: [],
    },
    training: { environment: { device: 'cpu', epochs: 200 } },
    evaluation: { metrics: { accuracy: 0.9649, auc: 0.995, n: 114 }, policyDigest: 'sha256:' + 'e'.repeat(64) },
    approvals: [
      {
        decision: 'approve',
        name: HOSTILE,
        approver: 'dana@hospital.example',
        role: 'compliance',
        meaning: 'approval',
        at: '2026-11-21T09:00:00.000Z',
        modelDigest: 'sha256:' + 'a'.repeat(64),
        comment: null,
        keyFingerprint: null,
        signatureVerified: null,
        signedAt: null,
      },
    ],
    refusedDecisions: 2,
    serving: { model: { state: 'live', reason: 'served', version: 3 }, version: { state: 'live', reason: 'served', number: 3 }, history: [] },
    ...over,
  };
}

const entry = (over: Partial<InventoryEntry>): InventoryEntry => ({
  model: 'bcc',
  version: 1,
  state: 'deployed',
  registryState: 'deployed',
  riskTier: 'high',
  owner: 'omar@hospital.example',
  workflowId: 'lifecycle-bcc-1',
  lastValidatedAt: '2025-01-01T00:00:00.000Z',
  revalidateEvery: '365d',
  revalidationDueAt: '2026-01-01T00:00:00.000Z',
  overdue: true,
  overdueDays: 330,
  revalidatedAt: null,
  openRevalidation: null,
  ...over,
});

describe('console lineage graph', () => {
  it('has the six stages in order; an undeployed version without requests draws them as empty', () => {
    const nodes = lineageNodes(trace(), { byOutcome: [], capped: false });
    expect(nodes.map((n) => n.id)).toEqual(['data', 'training', 'artifact', 'approvals', 'deployment', 'requests']);
    expect(nodes.filter((n) => n.empty).map((n) => n.id)).toEqual(['deployment', 'requests']);
    expect(nodes[3]!.lines).toContain('2 refused');
    const served = lineageNodes(trace(), {
      byOutcome: [
        { outcome: 'served', count: 7 },
        { outcome: 'refused', count: 2 },
      ],
      capped: true,
    });
    expect(served[5]!.lines).toEqual(['≥ 9 logged', 'served: 7', 'refused: 2']);
  });

  it('escapes every text and cuts long lines; no script, no style attribute (the CSP forbids inline styles)', () => {
    const svg = renderLineageSvg(lineageNodes(trace(), { byOutcome: [], capped: false }), HOSTILE);
    expect(svg).not.toContain('<script');
    expect(svg).not.toContain('\u202e');
    expect(svg).toContain('&lt;script&gt;');
    expect(svg).not.toMatch(/\sstyle=/);
    expect(svg.match(/<g class="node/g)).toHaveLength(6);
    expect(svg.match(/<line /g)).toHaveLength(5);
    for (const t of svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)) expect(t[1]!.replace(/&[a-z#0-9]+;/g, '.').length).toBeLessThanOrEqual(24);
  });
});

describe('console pages', () => {
  it('the inventory flags overdue versions, escapes owners and links each version by its encoded name', () => {
    const html = inventoryPage(
      [
        entry({ owner: HOSTILE, openRevalidation: 'revalidation-bcc-1-2026-01-01' }),
        entry({ version: 2, overdue: false, overdueDays: null, revalidationDueAt: '2027-06-01T00:00:00.000Z' }),
      ],
      {
        shownMax: 1,
        policyVersion: '1.0',
        now: new Date('2026-11-27T00:00:00Z'),
      },
    );
    expect(html).not.toContain('<script>');
    expect(html).toContain('<tr class="overdue">');
    expect(html).toContain('OVERDUE</span> by 330 d');
    expect(html).toContain('review open: <code>revalidation-bcc-1-2026-01-01</code>');
    expect(html).toContain('<b>1</b> revalidation(s) overdue');
    expect(html).toContain('href="/models/bcc/1"');
    expect(html).toContain('Showing the first 1 of 2 versions');
  });

  it('groups pending gates by role, each linking to the Temporal UI with encoded ids', () => {
    const gate = {
      workflowId: 'lifecycle-a/b"<x>',
      runId: 'r1',
      workflowType: 'modelLifecycle',
      modelName: 'a',
      riskTier: 'medium',
      pendingRoles: ['validator', 'model-owner'],
      startTime: 't',
    };
    expect(byRole([gate, { ...gate, workflowId: 'w2', pendingRoles: ['validator'] }]).map((g) => [g.role, g.gates.length])).toEqual([
      ['model-owner', 1],
      ['validator', 2],
    ]);
    const url = temporalWorkflowUrl({ TEMPORAL_ADDRESS: '127.0.0.1:7233', TEMPORAL_UI_PORT: 8233, TEMPORAL_NAMESPACE: 'default' }, gate);
    expect(url).toBe('http://127.0.0.1:8233/namespaces/default/workflows/lifecycle-a%2Fb%22%3Cx%3E/r1/history');
    const html = approvalsPage({ pending: [gate], truncated: false }, () => url);
    expect(html).not.toContain('"<x>');
    expect(html).toContain('lifecycle-a/b&quot;&lt;x&gt;');
    expect(approvalsPage({ error: HOSTILE }, () => '')).not.toContain('<script>');
  });

  it('the audit page says VERIFIED, BROKEN or NOT ANCHORED', () => {
    const checkpoint = { seq: '10', eventCount: 10, createdAt: 't', signedBy: 'SHA256:k', key: 'k' };
    expect(auditPage({ location: 's3://e/', invalid: [], millis: 1 })).toContain('NOT ANCHORED');
    expect(
      auditPage({
        location: 's3://e/',
        invalid: [],
        checkpoint,
        since: { ok: true, checked: 3, capped: false, lastSeq: '13' },
        head: { seq: '13' },
        millis: 1,
      }),
    ).toContain('VERIFIED');
    const broken = auditPage({
      location: 's3://e/',
      invalid: [{ key: HOSTILE, reason: 'x' }],
      checkpoint,
      since: { ok: false, checked: 0, capped: false, lastSeq: '10', firstBad: { seq: '10', reason: 'the checkpointed row is gone' } },
      head: { seq: '9' },
      millis: 1,
    });
    expect(broken).toContain('BROKEN');
    expect(broken).toContain('events were cut off');
    expect(broken).not.toContain('<script>');
  });

  it('the KPI page shows each figure with its goal, MISSED ones flagged, every text escaped', () => {
    const k = (id: (typeof KPI_IDS)[number]): Kpi => ({
      id,
      title: id === 'inferenceP95' ? HOSTILE : id,
      value: id === 'inferenceP95' ? 1234.4 : id === 'policyViolations' ? null : 0.5,
      unit: id === 'inferenceP95' ? 'ms' : 'ratio',
      numerator: 1,
      denominator: 2,
      goal: { op: '>=', value: 1, source: HOSTILE },
      met: id === 'policyViolations' ? null : false,
      detail: { [HOSTILE]: 3 },
      note: HOSTILE,
    });
    const report: KpiReport = {
      asOf: '2026-11-27T00:00:00.000Z',
      since: '2026-10-28T00:00:00.000Z',
      policyDigest: 'sha256:x',
      kpis: Object.fromEntries(KPI_IDS.map((id) => [id, k(id)])) as KpiReport['kpis'],
    };
    const html = kpisPage(report, { sinceText: '<b>30d', historiesChecked: false });
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<b>30d');
    expect(html).toContain('<b>50.0%</b>');
    expect(html).toContain('<b>1234 ms</b>');
    expect(html.match(/MISSED/g)).toHaveLength(KPI_IDS.length - 1);
    expect(html).toContain('Temporal did not answer');
  });
});
