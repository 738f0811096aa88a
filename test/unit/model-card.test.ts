import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CARD_MAX_REASONS, type CardData, buildCard, escapeHtml, renderCardHtml, renderCardText } from '../../src/cards/card.ts';
import { DEFAULT_POLICY_PACK, parsePolicyPack } from '../../src/policy/pack.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';

// The default pack's signing tiers need keys (dev up adds them); the card reads tiers and use cases only.
const loaded = parsePolicyPack(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8').replace(/requireSignature: true/g, 'requireSignature: false'));
const HOSTILE = '<script>alert("x")</script>';

function trace(over: Partial<ModelTrace> = {}): ModelTrace {
  return {
    model: {
      name: 'breast-cancer-classifier',
      version: 3,
      state: 'deployed',
      riskTier: 'high',
      artifactDigest: 'sha256:' + 'a'.repeat(64),
      artifactUri: 's3://artifacts/bcc/3/model.onnx',
      registeredAt: '2026-11-20T10:00:00.000Z',
      workflowId: 'lifecycle-bcc-3',
    },
    code: { commitSha: 'c0ffee', imageDigest: 'sha256:' + 'b'.repeat(64), developer: 'alice@hospital.example', requester: 'ci@hospital.example' },
    data: {
      name: 'wdbc',
      rawUri: 's3://raw/wdbc.csv',
      rawSha256: 'sha256:' + 'c'.repeat(64),
      manifestDigest: 'sha256:' + 'd'.repeat(64),
      manifestUri: 's3://certified/wdbc/manifest.json',
      certifiedUri: 's3://certified/wdbc/data.csv',
      rowsTotal: 572,
      rowsAccepted: 569,
      rowsExcluded: 3,
      exclusions: [
        { line: 4, reason: 'missing value in column radius_mean' },
        { line: 9, reason: 'missing value in column radius_mean' },
        { line: 12, reason: 'label not in {0,1}' },
      ],
    },
    training: { environment: {} },
    evaluation: { metrics: { accuracy: 0.9649, auc: 0.995, recall: 0.88, n: 114 }, policyDigest: 'sha256:' + 'e'.repeat(64) },
    approvals: [
      {
        decision: 'approve',
        name: 'Dana Whitfield',
        approver: 'dana@hospital.example',
        role: 'compliance',
        meaning: 'approved for release',
        at: '2026-11-21T09:00:00.000Z',
        modelDigest: 'sha256:' + 'a'.repeat(64),
        comment: HOSTILE,
        keyFingerprint: 'SHA256:abc',
        signatureVerified: true,
        signedAt: '2026-11-21T09:00:00.000Z',
      },
      {
        decision: 'approve',
        name: 'Sam Okafor',
        approver: 'sam@hospital.example',
        role: 'security',
        meaning: 'approved for release',
        at: '2026-11-21T10:00:00.000Z',
        modelDigest: 'sha256:' + 'a'.repeat(64),
        comment: null,
        keyFingerprint: null,
        signatureVerified: null,
        signedAt: null,
      },
    ],
    refusedDecisions: 0,
    serving: { model: { state: 'live', reason: 'served', version: 3 }, version: { state: 'live', reason: 'the gateway serves it', number: 3 }, history: [] },
    deployment: {
      tritonModel: 'bcc',
      tritonVersion: 3,
      endpoint: 'http://127.0.0.1:8000',
      artifactDigest: 'sha256:' + 'a'.repeat(64),
      at: '2026-11-21T11:00:00.000Z',
    },
    ...over,
  };
}

function data(over: Partial<CardData> = {}): CardData {
  return {
    trace: trace(),
    pack: loaded.pack,
    policyDigest: loaded.digest,
    classification: 'phi',
    revalidation: { lastValidatedAt: '2026-11-20T12:00:00.000Z', revalidateEvery: '365d', revalidationDueAt: '2027-11-20T12:00:00.000Z', overdue: false },
    monitoring: {
      windowStart: '2026-11-27T16:00:00.000Z',
      windowEnd: '2026-11-27T16:15:00.000Z',
      figures: { errorRate: 0.004, latencyP95Ms: 12.5, maxFeaturePsi: { feature: 'radius_mean', value: 0.031 } },
      breaches: 0,
    },
    generatedAt: '2026-11-27T17:00:00.000Z',
    ...over,
  };
}

describe('model card: the pure builder', () => {
  it('gathers use cases, data, metrics against the tier, approvals, serving, monitoring and revalidation into the JSON card', () => {
    const c = buildCard(data());
    expect(c.cardFormat).toBe(1);
    expect(c.model).toMatchObject({ name: 'breast-cancer-classifier', version: 3, riskTier: 'high', state: 'deployed' });
    expect(c.intendedUse.useCases).toEqual([{ name: 'demo-screening', description: 'Local demo: breast cancer screening' }]);
    expect(c.data).toMatchObject({ dataset: 'wdbc', classification: 'phi', rowsTotal: 572, rowsExcluded: 3 });
    expect(c.data.exclusionsByReason).toEqual([
      { reason: 'missing value in column radius_mean', count: 2 },
      { reason: 'label not in {N,N}', count: 1 },
    ]);
    // The high tier's thresholds (0.93 accuracy, 0.97 auc, 0.90 recall); `n` is a count, not a metric.
    expect(c.metrics).toEqual([
      { metric: 'accuracy', value: 0.9649, threshold: 0.93, pass: true },
      { metric: 'auc', value: 0.995, threshold: 0.97, pass: true },
      { metric: 'recall', value: 0.88, threshold: 0.9, pass: false },
    ]);
    expect(c.limitations).toEqual([]);
    expect(c.approvals.map((a) => [a.name, a.role, a.signatureVerified])).toEqual([
      ['Dana Whitfield', 'compliance', 'yes'],
      ['Sam Okafor', 'security', 'unsigned'],
    ]);
    expect(c.serving).toEqual({ state: 'live', reason: 'the gateway serves it', deployedAt: '2026-11-21T11:00:00.000Z', endpoint: 'http://127.0.0.1:8000' });
    expect(c.monitoring).toEqual({
      windowStart: '2026-11-27T16:00:00.000Z',
      windowEnd: '2026-11-27T16:15:00.000Z',
      maxFeaturePsi: { feature: 'radius_mean', value: 0.031 },
      errorRate: 0.004,
      latencyP95Ms: 12.5,
      breaches: 0,
    });
    expect(c.revalidation.revalidationDueAt).toBe('2027-11-20T12:00:00.000Z');
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
  });

  it('takes limitations from the tier when the pack declares them, and says none declared otherwise', () => {
    const pack = structuredClone(loaded.pack);
    pack.riskTiers.high.limitations = ['Not validated on patients under 18.'];
    expect(buildCard(data({ pack })).limitations).toEqual(['Not validated on patients under 18.']);
    expect(renderCardHtml(buildCard(data()))).toContain('None declared.');
    expect(renderCardText(buildCard(data()))).toContain('limitations   none declared');
  });

  it('without a use case naming the model at its tier, without monitoring and with many exclusion reasons', () => {
    const exclusions = Array.from({ length: CARD_MAX_REASONS + 5 }, (_, i) => ({ line: i, reason: `reason ${String.fromCharCode(97 + i)}` }));
    const t = trace({ model: { ...trace().model, name: 'other-model' }, data: { ...trace().data, exclusions } });
    const c = buildCard(data({ trace: t, monitoring: null }));
    expect(c.intendedUse.useCases).toEqual([]);
    expect(c.intendedUse.summary).toMatch(/No use case/);
    expect(c.monitoring).toBeNull();
    expect(c.data.exclusionsByReason).toHaveLength(CARD_MAX_REASONS + 1);
    expect(c.data.exclusionsByReason.at(-1)).toEqual({ reason: '(5 other reasons)', count: 5 });
    expect(renderCardHtml(c)).toContain('No monitoring window recorded.');
  });
});

describe('model card: HTML', () => {
  it('escapes a hostile approver comment, model name and dataset name: no markup of theirs survives', () => {
    const t = trace({ model: { ...trace().model, name: `m"><img src=x onerror=alert(1)>` }, data: { ...trace().data, name: HOSTILE } });
    const html = renderCardHtml(buildCard(data({ trace: t })));
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('m&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(escapeHtml('a\u001b[31m\u202eb')).toBe('a\ufffd[31m\ufffdb');
  });

  it('is self-contained and prints well: print CSS, a page size, no external asset, no script', () => {
    const html = renderCardHtml(buildCard(data()));
    expect(html).toMatch(/@media print \{/);
    expect(html).toMatch(/@page \{ size: A4/);
    expect(html).toContain(`Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(html).not.toMatch(/<script|<link|<img|src=|href=|url\(|@import/);
    for (const text of ['breast-cancer-classifier@3', 'high', 'accuracy', '0.9649', 'Dana Whitfield', 'FAIL', 'demo-screening', 'phi', '2027-11-20'])
      expect(html).toContain(text);
  });
});
