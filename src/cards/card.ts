import type { PolicyPack } from '../policy/schema.ts';
import type { ModelTrace } from '../trace/trace.ts';

/**
 * A model card (issue 11 item 2): what a reviewer or examiner reads about one model version. Built by a
 * pure function from what the trace loaded (src/trace/trace.ts) plus the few facts the trace does not
 * carry (the pack in force, the last validation, the last monitoring window, the data classification);
 * the same card renders as JSON and as HTML (renderCardHtml).
 */
export interface CardData {
  trace: ModelTrace;
  pack: Pick<PolicyPack, 'version' | 'riskTiers' | 'useCases'>;
  policyDigest: string;
  /** The classification the certified manifest declares; null when it could not be read. */
  classification: string | null;
  /** From the inventory (src/inventory/inventory.ts): last validation and the revalidation it gives. */
  revalidation: { lastValidatedAt: string | null; revalidateEvery: string | null; revalidationDueAt: string | null; overdue: boolean };
  /** The model's latest monitoring window for this version, if any. */
  monitoring: { windowStart: string; windowEnd: string; figures: Record<string, unknown>; breaches: number } | null;
  generatedAt: string;
}

export type SignatureVerified = 'yes' | 'no' | 'unsigned';

export interface ModelCard {
  cardFormat: 1;
  generatedAt: string;
  policy: { version: string; digest: string };
  model: { name: string; version: number; state: string; riskTier: string; artifactDigest: string; registeredAt: string; developer: string };
  intendedUse: { summary: string; useCases: Array<{ name: string; description: string | null }> };
  data: {
    dataset: string;
    classification: string | null;
    manifestDigest: string;
    rowsTotal: number;
    rowsAccepted: number;
    rowsExcluded: number;
    exclusionsByReason: Array<{ reason: string; count: number }>;
  };
  metrics: Array<{ metric: string; value: number; threshold: number | null; pass: boolean | null }>;
  /** Empty: none declared. */
  limitations: string[];
  approvals: Array<{
    name: string;
    approver: string;
    role: string;
    at: string;
    meaning: string;
    decision: string;
    comment: string | null;
    signatureVerified: SignatureVerified;
  }>;
  serving: { state: string; reason: string; deployedAt: string | null; endpoint: string | null };
  monitoring: {
    windowStart: string;
    windowEnd: string;
    maxFeaturePsi: { feature: string; value: number } | null;
    errorRate: number | null;
    latencyP95Ms: number | null;
    breaches: number;
  } | null;
  revalidation: CardData['revalidation'];
}

/** The card's exclusion reasons listed one by one; the rest are summed under one line (a hostile dataset can have thousands). */
export const CARD_MAX_REASONS = 20;

/** "missing value in line 12" and "missing value in line 13" are one reason: numbers are not part of it. */
function reasonKey(reason: string): string {
  return reason.replace(/\d+/g, 'N').slice(0, 200);
}

export function buildCard(d: CardData): ModelCard {
  const t = d.trace;
  const tier = d.pack.riskTiers[t.model.riskTier as keyof PolicyPack['riskTiers']];
  const useCases = (d.pack.useCases ?? [])
    .filter((u) => u.models.includes(t.model.name) && (u.riskTiers as string[]).includes(t.model.riskTier))
    .map((u) => ({ name: u.name, description: u.description ?? null }));
  const counts = new Map<string, number>();
  for (const e of t.data.exclusions) counts.set(reasonKey(e.reason), (counts.get(reasonKey(e.reason)) ?? 0) + 1);
  const sorted = [...counts].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  const rest = sorted.slice(CARD_MAX_REASONS).reduce((n, r) => n + r.count, 0);
  const thresholds: Record<string, number | undefined> = tier?.thresholds ?? {};
  const metrics = Object.entries(t.evaluation.metrics)
    .filter(([k]) => k !== 'n')
    .map(([metric, value]) => {
      const threshold = thresholds[metric] ?? null;
      return { metric, value, threshold, pass: threshold === null ? null : value >= threshold };
    });
  const f = d.monitoring?.figures ?? {};
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const maxPsi = f.maxFeaturePsi as { feature?: unknown; value?: unknown } | null | undefined;
  return {
    cardFormat: 1,
    generatedAt: d.generatedAt,
    policy: { version: d.pack.version, digest: d.policyDigest },
    model: {
      name: t.model.name,
      version: t.model.version,
      state: t.model.state,
      riskTier: t.model.riskTier,
      artifactDigest: t.model.artifactDigest,
      registeredAt: t.model.registeredAt,
      developer: t.code.developer,
    },
    intendedUse: {
      summary: useCases.length
        ? `Approved for ${useCases.length} use case(s) of the policy pack at risk tier ${t.model.riskTier}.`
        : 'No use case of the policy pack names this model at its risk tier: not approved for use through the gateway.',
      useCases,
    },
    data: {
      dataset: t.data.name,
      classification: d.classification,
      manifestDigest: t.data.manifestDigest,
      rowsTotal: t.data.rowsTotal,
      rowsAccepted: t.data.rowsAccepted,
      rowsExcluded: t.data.rowsExcluded,
      exclusionsByReason: [
        ...sorted.slice(0, CARD_MAX_REASONS),
        ...(rest ? [{ reason: `(${sorted.length - CARD_MAX_REASONS} other reasons)`, count: rest }] : []),
      ],
    },
    metrics,
    limitations: [...(tier?.limitations ?? [])],
    approvals: t.approvals.map((a) => ({
      name: a.name,
      approver: a.approver,
      role: a.role,
      at: a.at,
      meaning: a.meaning,
      decision: a.decision,
      comment: a.comment,
      signatureVerified: a.signatureVerified === null ? 'unsigned' : a.signatureVerified ? 'yes' : 'no',
    })),
    serving: {
      state: t.serving.version?.state ?? t.model.state,
      reason: t.serving.version?.reason ?? '',
      deployedAt: t.deployment?.at ?? null,
      endpoint: t.deployment?.endpoint ?? null,
    },
    monitoring: d.monitoring
      ? {
          windowStart: d.monitoring.windowStart,
          windowEnd: d.monitoring.windowEnd,
          maxFeaturePsi:
            maxPsi && typeof maxPsi.feature === 'string' && num(maxPsi.value) !== null ? { feature: maxPsi.feature, value: num(maxPsi.value)! } : null,
          errorRate: num(f.errorRate),
          latencyP95Ms: num(f.latencyP95Ms),
          breaches: d.monitoring.breaches,
        }
      : null,
    revalidation: d.revalidation,
  };
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Controls, and the bidi marks that reorder what a reviewer reads: shown as U+FFFD on the card. */
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** Every string that reaches the HTML goes through this: names, comments and reasons are input. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(UNPRINTABLE, '\ufffd')
    .replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Print-first, self-contained: no external asset, no script (the CSP forbids both). */
export const CARD_CSS = `
body { font: 11pt/1.4 system-ui, sans-serif; color: #111; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 18pt; margin-bottom: .2rem; } h2 { font-size: 13pt; border-bottom: 1px solid #999; margin-top: 1.4rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }
.pass { color: #0a6b2b; font-weight: 600; } .fail { color: #b00020; font-weight: 600; } .muted { color: #555; }
code { font-size: 9pt; word-break: break-all; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; max-width: none; font-size: 10pt; } h2 { break-after: avoid; } tr, section { break-inside: avoid; } a { color: inherit; text-decoration: none; } }
`;

function table(head: string[], rows: string[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const fixed = (n: number | null, digits = 4) => (n === null ? '—' : n.toFixed(digits));

/** The card as one HTML page: cells are escaped here (escapeHtml), never trusted. */
export function renderCardHtml(c: ModelCard): string {
  const e = escapeHtml;
  const title = `Model card: ${c.model.name}@${c.model.version}`;
  const sections = [
    `<section><h2>Intended use</h2><p>${e(c.intendedUse.summary)}</p>${
      c.intendedUse.useCases.length
        ? `<ul>${c.intendedUse.useCases.map((u) => `<li><b>${e(u.name)}</b>${u.description ? `: ${e(u.description)}` : ''}</li>`).join('')}</ul>`
        : ''
    }</section>`,
    `<section><h2>Risk tier</h2><p>${e(c.model.riskTier)} (policy pack ${e(c.policy.version)}, <code>${e(c.policy.digest)}</code>)</p></section>`,
    `<section><h2>Data</h2>${table(
      ['dataset', 'classification', 'rows', 'accepted', 'excluded'],
      [[e(c.data.dataset), e(c.data.classification ?? 'not recorded'), e(c.data.rowsTotal), e(c.data.rowsAccepted), e(c.data.rowsExcluded)]],
    )}<p class="muted">manifest <code>${e(c.data.manifestDigest)}</code></p>${
      c.data.exclusionsByReason.length
        ? table(
            ['exclusion reason', 'rows'],
            c.data.exclusionsByReason.map((r) => [e(r.reason), e(r.count)]),
          )
        : '<p>No rows excluded.</p>'
    }</section>`,
    `<section><h2>Metrics against the tier's thresholds</h2>${table(
      ['metric', 'value', 'threshold', 'result'],
      c.metrics.map((m) => [
        e(m.metric),
        e(fixed(m.value)),
        e(m.threshold === null ? '—' : fixed(m.threshold, 2)),
        m.pass === null ? '<span class="muted">no threshold</span>' : m.pass ? '<span class="pass">pass</span>' : '<span class="fail">FAIL</span>',
      ]),
    )}</section>`,
    `<section><h2>Limitations</h2>${c.limitations.length ? `<ul>${c.limitations.map((l) => `<li>${e(l)}</li>`).join('')}</ul>` : '<p>None declared.</p>'}</section>`,
    `<section><h2>Approvals</h2>${
      c.approvals.length
        ? table(
            ['name', 'role', 'time', 'meaning', 'signature verified', 'comment'],
            c.approvals.map((a) => [
              `${e(a.name)}<br><span class="muted">${e(a.approver)}</span>`,
              e(a.role),
              e(a.at),
              `${e(a.meaning)} (${e(a.decision)})`,
              a.signatureVerified === 'yes' ? '<span class="pass">yes</span>' : a.signatureVerified === 'no' ? '<span class="fail">NO</span>' : 'unsigned',
              e(a.comment ?? ''),
            ]),
          )
        : '<p>None.</p>'
    }</section>`,
    `<section><h2>Serving</h2><p>${e(c.serving.state)}${c.serving.reason ? `: ${e(c.serving.reason)}` : ''}${
      c.serving.deployedAt ? `<br>deployed ${e(c.serving.deployedAt)}${c.serving.endpoint ? ` at ${e(c.serving.endpoint)}` : ''}` : ''
    }</p></section>`,
    `<section><h2>Monitoring</h2>${
      c.monitoring
        ? table(
            ['last window', 'PSI max', 'error rate', 'latency p95 (ms)', 'breaches'],
            [
              [
                `${e(c.monitoring.windowStart)} – ${e(c.monitoring.windowEnd)}`,
                c.monitoring.maxFeaturePsi ? `${e(fixed(c.monitoring.maxFeaturePsi.value))} (${e(c.monitoring.maxFeaturePsi.feature)})` : '—',
                e(fixed(c.monitoring.errorRate)),
                e(fixed(c.monitoring.latencyP95Ms, 1)),
                e(c.monitoring.breaches),
              ],
            ],
          )
        : '<p>No monitoring window recorded.</p>'
    }</section>`,
    `<section><h2>Revalidation</h2><p>${
      c.revalidation.revalidationDueAt
        ? `next revalidation due ${e(c.revalidation.revalidationDueAt.slice(0, 10))}${c.revalidation.overdue ? ' <span class="fail">OVERDUE</span>' : ''}`
        : 'no revalidation due (not in use, never validated, or the tier sets none)'
    }${c.revalidation.lastValidatedAt ? `; last validated ${e(c.revalidation.lastValidatedAt)}` : ''}${
      c.revalidation.revalidateEvery ? ` (every ${e(c.revalidation.revalidateEvery)})` : ''
    }</p></section>`,
  ];
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    `<title>${e(title)}</title><style>${CARD_CSS}</style></head><body>`,
    `<header><h1>${e(title)}</h1><p class="muted">state ${e(c.model.state)} · risk tier ${e(c.model.riskTier)} · registered ${e(c.model.registeredAt)} by ${e(c.model.developer)}<br>artifact <code>${e(c.model.artifactDigest)}</code><br>card generated ${e(c.generatedAt)}</p></header>`,
    ...sections,
    '</body></html>',
    '',
  ].join('\n');
}

/** The card for a terminal: the same facts in a few lines. */
export function renderCardText(c: ModelCard): string {
  return [
    `model card ${c.model.name}@${c.model.version}  state=${c.model.state}  risk=${c.model.riskTier}`,
    `  intended use  ${c.intendedUse.useCases.map((u) => u.name).join(', ') || '(no use case approved)'}`,
    `  data          ${c.data.dataset} (${c.data.classification ?? 'classification not recorded'}): ${c.data.rowsAccepted}/${c.data.rowsTotal} rows, ${c.data.rowsExcluded} excluded`,
    `  metrics       ${c.metrics.map((m) => `${m.metric}=${fixed(m.value)}${m.threshold === null ? '' : m.pass ? ' pass' : ' FAIL'}`).join('  ')}`,
    `  limitations   ${c.limitations.join('; ') || 'none declared'}`,
    ...c.approvals.map((a) => `  approved      ${a.at}  ${a.name} (${a.role})  ${a.meaning}  signature verified: ${a.signatureVerified}`),
    `  serving       ${c.serving.state}`,
    `  monitoring    ${c.monitoring ? `${c.monitoring.windowEnd}: PSI max ${fixed(c.monitoring.maxFeaturePsi?.value ?? null)}, error rate ${fixed(c.monitoring.errorRate)}, p95 ${fixed(c.monitoring.latencyP95Ms, 1)} ms` : 'no window recorded'}`,
    `  revalidation  ${c.revalidation.revalidationDueAt ? `due ${c.revalidation.revalidationDueAt.slice(0, 10)}${c.revalidation.overdue ? ' OVERDUE' : ''}` : 'none due'}`,
  ].join('\n');
}
