import { escapeHtml } from '../cards/card.ts';
import type { ModelTrace } from '../trace/trace.ts';

/**
 * A model version's lineage as an inline SVG, drawn on the server (no script, no external asset: the
 * console's CSP allows neither): data → training → artifact → approvals → deployment → requests, one
 * box per stage in a row. Six boxes in a fixed row need no layout engine (docs/design.md, "Console").
 * Every text is escaped (escapeHtml) and cut to what fits a box; the whole value is in the box's
 * <title> (a tooltip), escaped too.
 */

/** Requests the gateway logged for the version, by outcome; `capped` when there were more than were counted. */
export interface RequestCounts {
  byOutcome: Array<{ outcome: string; count: number }>;
  capped: boolean;
}

export interface LineageNode {
  id: 'data' | 'training' | 'artifact' | 'approvals' | 'deployment' | 'requests';
  title: string;
  lines: string[];
  /** A stage with nothing recorded (not deployed, no approval, no request) is drawn dashed and grey. */
  empty: boolean;
}

const BOX_W = 180;
const BOX_H = 130;
const GAP = 36;
const PAD = 10;
const LINE_H = 17;
/** Characters that fit a line of a box at the font size used (monospace digests are the widest). */
const LINE_CHARS = 24;
const MAX_LINES = 5;

const short = (digest: string, n = 12) => {
  const [algo, hex] = digest.includes(':') ? digest.split(':', 2) : ['', digest];
  return `${algo ? `${algo}:` : ''}${(hex ?? '').slice(0, n)}…`;
};

/** The six stages' facts, from the trace (src/trace/trace.ts) and the request counts: pure. */
export function lineageNodes(t: ModelTrace, requests: RequestCounts): LineageNode[] {
  const env = t.training.environment;
  const metrics = Object.entries(t.evaluation.metrics).filter(([k]) => k !== 'n');
  const served = requests.byOutcome.reduce((n, r) => n + r.count, 0);
  return [
    {
      id: 'data',
      title: 'Data',
      lines: [
        t.data.name,
        `${t.data.rowsAccepted}/${t.data.rowsTotal} rows certified`,
        `${t.data.rowsExcluded} excluded`,
        `manifest ${short(t.data.manifestDigest)}`,
      ],
      empty: false,
    },
    {
      id: 'training',
      title: 'Training',
      lines: [
        `commit ${t.code.commitSha.slice(0, 12)}`,
        `image ${short(t.code.imageDigest)}`,
        ...(['device', 'torch', 'epochs', 'seed'] as const).filter((k) => env[k] !== undefined && env[k] !== null).map((k) => `${k} ${String(env[k])}`),
        `by ${t.code.developer}`,
      ],
      empty: false,
    },
    {
      id: 'artifact',
      title: `Artifact v${t.model.version}`,
      lines: [
        short(t.model.artifactDigest),
        ...metrics.slice(0, 2).map(([k, v]) => `${k} ${Number(v).toFixed(4)}`),
        t.provenance ? `provenance signed` : 'provenance not signed',
      ],
      empty: false,
    },
    {
      id: 'approvals',
      title: `Approvals (${t.approvals.length})`,
      lines: t.approvals.length
        ? [
            ...t.approvals.slice(0, 3).map((a) => `${a.role}: ${a.name}`),
            ...(t.approvals.length > 3 ? [`… ${t.approvals.length - 3} more`] : []),
            ...(t.refusedDecisions ? [`${t.refusedDecisions} refused`] : []),
          ]
        : ['none recorded', ...(t.refusedDecisions ? [`${t.refusedDecisions} refused`] : [])],
      empty: t.approvals.length === 0,
    },
    {
      id: 'deployment',
      title: 'Deployment',
      lines: t.deployment
        ? [
            `Triton ${t.deployment.tritonModel}`,
            `version ${t.deployment.tritonVersion}`,
            t.deployment.at.slice(0, 19).replace('T', ' '),
            `serving: ${t.serving.version?.state ?? t.model.state}`,
          ]
        : ['not deployed', `state ${t.model.state}`],
      empty: !t.deployment,
    },
    {
      id: 'requests',
      title: 'Requests',
      lines: served
        ? [
            `${requests.capped ? '≥ ' : ''}${served} logged`,
            ...requests.byOutcome
              .slice()
              .sort((a, b) => b.count - a.count || a.outcome.localeCompare(b.outcome))
              .slice(0, 3)
              .map((r) => `${r.outcome}: ${r.count}`),
          ]
        : ['none logged'],
      empty: served === 0,
    },
  ];
}

function fit(line: string): string {
  return line.length > LINE_CHARS ? `${line.slice(0, LINE_CHARS - 1)}…` : line;
}

/** The lineage as one <svg> element (inline in the page): escaped, sized by its viewBox. */
export function renderLineageSvg(nodes: LineageNode[], label: string): string {
  const e = escapeHtml;
  const width = nodes.length * BOX_W + (nodes.length - 1) * GAP + 2 * PAD;
  const height = BOX_H + 2 * PAD;
  const boxes = nodes.map((n, i) => {
    const x = PAD + i * (BOX_W + GAP);
    const y = PAD;
    const lines = n.lines.slice(0, MAX_LINES);
    return [
      `<g class="node${n.empty ? ' empty' : ''}" data-stage="${e(n.id)}">`,
      `<title>${e(`${n.title}\n${n.lines.join('\n')}`)}</title>`,
      `<rect x="${x}" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="8" fill="${n.empty ? '#f4f4f4' : '#eef4fb'}" stroke="${n.empty ? '#999' : '#2a5d9f'}" stroke-width="1.5"${n.empty ? ' stroke-dasharray="5 4"' : ''}/>`,
      `<text x="${x + 10}" y="${y + 22}" font-size="14" font-weight="600" fill="#111">${e(fit(n.title))}</text>`,
      ...lines.map((l, j) => `<text x="${x + 10}" y="${y + 44 + j * LINE_H}" font-size="11.5" fill="#333">${e(fit(l))}</text>`),
      '</g>',
    ].join('');
  });
  const arrows = nodes.slice(1).map((_, i) => {
    const x1 = PAD + (i + 1) * BOX_W + i * GAP + 2;
    const x2 = x1 + GAP - 6;
    const y = PAD + BOX_H / 2;
    return `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="#555" stroke-width="1.5" marker-end="url(#arrow)"/>`;
  });
  return [
    `<svg class="lineage" role="img" aria-label="${e(label)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" font-family="system-ui, sans-serif">`,
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>`,
    ...arrows,
    ...boxes,
    '</svg>',
  ].join('\n');
}
