import { escapeHtml as e } from '../cards/card.ts';
import type { Kpi, KpiReport } from '../domain/kpi.ts';
import type { InventoryEntry } from '../inventory/inventory.ts';
import { INVENTORY_STATES } from '../inventory/inventory.ts';
import type { ModelTrace } from '../trace/trace.ts';
import type { AuditStatus, PendingApproval } from './data.ts';
import { byRole } from './data.ts';
import { type RequestCounts, lineageNodes, renderLineageSvg } from './lineage.ts';

/**
 * The console's pages: pure functions from facts to HTML. Every value from the database, Temporal or
 * a URL goes through escapeHtml (src/cards/card.ts, the card's own escaping); URLs we build from
 * names are percent-encoded as well. No script anywhere: the CSP forbids it.
 */

/** The stylesheet, served from /console.css (the CSP allows styles from 'self' only, no inline style). */
export const CONSOLE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #111; margin: 0; }
header.top { background: #1d3557; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.4rem; align-items: baseline; }
header.top a { color: #fff; text-decoration: none; } header.top a.here { text-decoration: underline; }
header.top .brand { font-weight: 700; margin-right: 1rem; } header.top .muted { color: #c9d3e0; }
main { padding: 1rem 1.2rem 3rem; max-width: 80rem; }
h1 { font-size: 1.4rem; margin: .4rem 0 .8rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e2e2e2; vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
tr.overdue td { background: #fdecee; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .25rem; font-size: .8rem; font-weight: 700; }
.overdue-badge { background: #b00020; color: #fff; } .ok { color: #0a6b2b; font-weight: 600; } .bad { color: #b00020; font-weight: 700; }
.muted { color: #555; } code { font-size: .85em; word-break: break-all; }
.summary { display: flex; gap: 1.5rem; flex-wrap: wrap; margin-bottom: .6rem; }
.summary div { background: #f3f5f8; padding: .4rem .8rem; border-radius: .3rem; }
iframe.card { width: 100%; height: 125rem; border: 1px solid #ccc; }
svg.lineage { max-width: 80rem; display: block; margin: .6rem 0 1rem; }
`;

export type Page = 'inventory' | 'approvals' | 'kpis' | 'audit';

export function layout(title: string, here: Page | undefined, body: string): string {
  const nav: Array<[Page, string, string]> = [
    ['inventory', '/', 'Inventory'],
    ['approvals', '/approvals', 'Pending approvals'],
    ['kpis', '/kpis', 'KPIs'],
    ['audit', '/audit', 'Audit'],
  ];
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${e(title)} · ai-factory console</title>`,
    '<link rel="stylesheet" href="/console.css"><link rel="icon" href="/favicon.svg" type="image/svg+xml">',
    '</head><body>',
    `<header class="top"><span class="brand">ai-factory console</span>${nav
      .map(([p, href, label]) => `<a href="${href}"${p === here ? ' class="here"' : ''}>${label}</a>`)
      .join('')}<span class="muted">read-only: decisions are made in Temporal</span></header>`,
    `<main><h1>${e(title)}</h1>`,
    body,
    '</main></body></html>',
    '',
  ].join('\n');
}

export const modelHref = (model: string, version: number) => `/models/${encodeURIComponent(model)}/${version}`;
const day = (iso: string | null) => (iso ? iso.slice(0, 10) : '—');

/** `/`: every version by state, with owner, tier, last validation and revalidation due; overdue ones flagged. */
export function inventoryPage(entries: InventoryEntry[], opts: { shownMax: number; policyVersion: string; now: Date }): string {
  const shown = entries.slice(0, opts.shownMax);
  const overdue = entries.filter((v) => v.overdue).length;
  const counts = INVENTORY_STATES.map((s) => [s, entries.filter((v) => v.state === s).length] as const).filter(([, n]) => n > 0);
  const rows = shown.map(
    (v) =>
      `<tr class="${v.overdue ? 'overdue' : ''}"><td><a href="${e(modelHref(v.model, v.version))}">${e(v.model)}@${e(v.version)}</a></td><td>${e(v.state)}</td><td>${e(v.riskTier)}</td><td>${e(v.owner)}</td><td>${e(day(v.lastValidatedAt))}</td><td>${e(day(v.revalidationDueAt))}${v.revalidateEvery ? ` <span class="muted">(every ${e(v.revalidateEvery)})</span>` : ''}</td><td>${
        v.overdue
          ? `<span class="badge overdue-badge">OVERDUE</span> by ${e(v.overdueDays ?? 0)} d`
          : v.revalidationDueAt
            ? '<span class="ok">in date</span>'
            : '<span class="muted">—</span>'
      }${v.openRevalidation ? `<br><span class="muted">review open: <code>${e(v.openRevalidation)}</code></span>` : ''}</td></tr>`,
  );
  return layout(
    'Model inventory',
    'inventory',
    [
      `<div class="summary"><div><b>${e(entries.length)}</b> version(s)</div><div class="${overdue ? 'bad' : ''}"><b>${e(overdue)}</b> revalidation(s) overdue</div>${counts
        .map(([s, n]) => `<div>${e(s)}: <b>${e(n)}</b></div>`)
        .join('')}</div>`,
      `<p class="muted">Revalidation due dates from the policy pack in force (${e(opts.policyVersion)}), as of ${e(opts.now.toISOString())}.</p>`,
      entries.length > shown.length
        ? `<p class="bad">Showing the first ${e(shown.length)} of ${e(entries.length)} versions: \`factory inventory --json\` lists all.</p>`
        : '',
      entries.length
        ? `<table><thead><tr><th>version</th><th>state</th><th>tier</th><th>owner</th><th>last validated</th><th>revalidation due</th><th>revalidation</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
        : '<p>No model version is registered yet.</p>',
    ].join('\n'),
  );
}

/** `/models/:model/:version`: the lineage graph and the model card (embedded from its own route, not re-rendered). */
export function modelPage(t: ModelTrace, requests: RequestCounts): string {
  const ref = `${t.model.name}@${t.model.version}`;
  const base = modelHref(t.model.name, t.model.version);
  const svg = renderLineageSvg(lineageNodes(t, requests), `Lineage of ${ref}: data, training, artifact, approvals, deployment, requests`);
  return layout(
    `${ref}`,
    undefined,
    [
      `<p class="muted">state ${e(t.model.state)} · risk tier ${e(t.model.riskTier)} · lifecycle <code>${e(t.model.workflowId)}</code></p>`,
      '<h2>Lineage</h2>',
      svg,
      `<p class="muted">From <code>factory trace ${e(ref)}</code>: raw file <code>${e(t.data.rawSha256)}</code>, artifact <code>${e(t.model.artifactDigest)}</code>.</p>`,
      '<h2>Model card</h2>',
      `<p><a href="${e(base)}/card.html">card as HTML</a> · <a href="${e(base)}/card.json">card as JSON</a></p>`,
      `<iframe class="card" title="Model card of ${e(ref)}" src="${e(base)}/card.html"></iframe>`,
    ].join('\n'),
  );
}

/** `/approvals`: gates waiting, per role, each linking to its workflow in the Temporal Web UI (where the decision is made). */
export function approvalsPage(
  p: { pending: PendingApproval[]; truncated: boolean } | { error: string },
  uiWorkflowUrl: (w: PendingApproval) => string,
): string {
  if ('error' in p) return layout('Pending approvals', 'approvals', `<p class="bad">Temporal did not answer: ${e(p.error)}</p>`);
  const groups = byRole(p.pending);
  const body = groups.length
    ? groups
        .map(
          (g) =>
            `<h2>${e(g.role)} <span class="muted">(${e(g.gates.length)})</span></h2><table><thead><tr><th>model</th><th>tier</th><th>workflow</th><th>waiting since</th><th>also waiting for</th><th>decide</th></tr></thead><tbody>${g.gates
              .map(
                (w) =>
                  `<tr><td>${e(w.modelName)}</td><td>${e(w.riskTier)}</td><td><code>${e(w.workflowId)}</code><br><span class="muted">${e(w.workflowType)}</span></td><td>${e(w.startTime)}</td><td>${e(
                    w.pendingRoles.filter((r) => r !== g.role).join(', ') || '—',
                  )}</td><td><a href="${e(uiWorkflowUrl(w))}" rel="noreferrer">open in Temporal UI</a></td></tr>`,
              )
              .join('')}</tbody></table>`,
        )
        .join('\n')
    : '<p>No lifecycle or retirement is waiting at its approval gate.</p>';
  return layout(
    'Pending approvals',
    'approvals',
    [
      '<p class="muted">Gates waiting for a decision, by the role they wait for (Temporal search attributes <code>LifecycleStage</code>, <code>PendingRoles</code>). Decisions are signals or updates to the workflow: send them from the Temporal UI or <code>factory approve</code>; this console changes nothing.</p>',
      p.truncated ? `<p class="bad">Only the first ${e(p.pending.length)} gates are listed.</p>` : '',
      body,
    ].join('\n'),
  );
}

/** `/audit`: the newest signed checkpoint and whether the chain verifies from it to the head. */
export function auditPage(s: AuditStatus): string {
  const lines: string[] = [];
  if (s.error) lines.push(`<p class="bad">${e(s.error)}</p>`);
  else if (!s.checkpoint) {
    lines.push(
      `<p class="bad">NOT ANCHORED: no signed checkpoint in <code>${e(s.location)}</code> yet; tail truncation and recomputation cannot be detected until one is written.</p>`,
    );
  } else {
    const c = s.checkpoint;
    const since = s.since!;
    lines.push(
      `<p>${
        since.ok
          ? `<span class="ok">VERIFIED</span> from the newest signed checkpoint to ${since.capped ? `seq ${e(since.lastSeq)} (${e(since.checked)} rows checked; later rows left to <code>factory audit verify</code>)` : 'the head'}`
          : `<span class="bad">BROKEN</span> at seq ${e(since.firstBad?.seq ?? '?')}: ${e(since.firstBad?.reason ?? '')}`
      }</p>`,
      `<table><tbody>
<tr><th>newest checkpoint</th><td>seq ${e(c.seq)} over ${e(c.eventCount)} events, signed ${e(c.createdAt)}</td></tr>
<tr><th>signed by</th><td><code>${e(c.signedBy)}</code></td></tr>
<tr><th>object</th><td><code>${e(s.location.replace(/audit-checkpoints\/.*$/, ''))}${e(c.key)}</code></td></tr>
<tr><th>chain head</th><td>${s.head ? `seq ${e(s.head.seq)}` : 'no event'}${s.head && BigInt(s.head.seq) < BigInt(c.seq) ? ' <span class="bad">behind the checkpoint: events were cut off</span>' : ''}</td></tr>
<tr><th>rows after it checked</th><td>${e(since.checked)}</td></tr>
</tbody></table>`,
    );
  }
  if (s.invalid.length) {
    lines.push(
      `<h2>Objects that are not valid checkpoints</h2><ul>${s.invalid.map((i) => `<li><code>${e(i.key)}</code>: <span class="bad">${e(i.reason)}</span></li>`).join('')}</ul>`,
    );
  }
  lines.push(
    `<p class="muted">Checked on this page load in ${e(s.millis)} ms: the checkpointed row's hash and every row after it (at most a bounded number). <code>factory audit verify</code> recomputes the whole chain against every checkpoint and the registry.</p>`,
  );
  return layout('Audit verification', 'audit', lines.join('\n'));
}

const kpiFigure = (unit: Kpi['unit'], v: number | null) =>
  v === null ? '—' : unit === 'ratio' ? `${(v * 100).toFixed(1)}%` : unit === 'ms' ? `${Math.round(v)} ms` : String(v);

/** `/kpis`: the KPI report (src/kpi, as `factory kpi`): figure, counts, goal met or MISSED, breakdown and note. */
export function kpisPage(r: KpiReport, opts: { sinceText: string; historiesChecked: boolean }): string {
  const rows = Object.values(r.kpis).map((k) => {
    const counts = k.denominator === null ? '' : k.numerator === null ? `n=${k.denominator}` : `${k.numerator}/${k.denominator}`;
    const detail = Object.entries(k.detail)
      .filter(([, v]) => v !== null && v !== 0)
      .map(([name, v]) => `${name}=${v}`)
      .join(' ');
    return `<tr class="${k.met === false ? 'overdue' : ''}"><td>${e(k.title)}</td><td><b>${e(kpiFigure(k.unit, k.value))}</b></td><td>${e(counts)}</td><td>${
      k.goal ? `${e(k.goal.op)} ${e(kpiFigure(k.unit, k.goal.value))}<br><span class="muted">${e(k.goal.source)}</span>` : ''
    }</td><td>${k.met === null ? '<span class="muted">—</span>' : k.met ? '<span class="ok">met</span>' : '<span class="badge overdue-badge">MISSED</span>'}</td><td>${
      detail ? `<code>${e(detail)}</code>` : ''
    }${k.note ? `<br><span class="muted">${e(k.note)}</span>` : ''}</td></tr>`;
  });
  return layout(
    'KPIs',
    'kpis',
    [
      `<p class="muted">From recorded facts (as <code>factory kpi --since ${e(opts.sinceText)}</code>), ${e(r.since)} to ${e(r.asOf)}, policy <code>${e(r.policyDigest)}</code>.${
        opts.historiesChecked ? '' : ' Temporal did not answer: histories were read from their exported objects only.'
      } Another window: <code>/kpis?since=7d</code> or <code>?since=2026-11-01</code>.</p>`,
      `<table><thead><tr><th>KPI</th><th>value</th><th>counts</th><th>goal</th><th>result</th><th>breakdown</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    ].join('\n'),
  );
}

export function errorPage(status: number, message: string): string {
  return layout(status === 404 ? 'Not found' : 'Error', undefined, `<p>${e(message)}</p><p><a href="/">Back to the inventory</a></p>`);
}
