/**
 * The capacity model (docs/capacity.md): storage growth, retention cost and the production footprint
 * for a given load, from per-unit costs measured on this project's benchmarks. Pure: no I/O.
 * Each unit cost says whether it was measured (and where) or is an assumption to replace with your own.
 */

export interface UnitCost {
  value: number;
  unit: string;
  basis: 'measured' | 'assumed';
  source: string;
}

/** Per-unit costs. Measured ones come from docs/benchmarks.md (1 M-event fill, lifecycle benches). */
export const UNIT_COSTS = {
  auditEventBytes: {
    value: 1_463,
    unit: 'B/event',
    basis: 'measured',
    source: 'audit_events with its 4 indexes at 1 M events (bench:fill, PostgreSQL 15)',
  },
  eventsPerLifecycle: {
    value: 13.84,
    unit: 'events/lifecycle',
    basis: 'measured',
    source: 'the recorded lifecycles of test/fixtures in the fill mix (7 to 20 each)',
  },
  decisionBytes: { value: 758, unit: 'B/decision', basis: 'measured', source: 'approvals with its indexes at 905 k decisions' },
  decisionsPerLifecycle: { value: 4.4, unit: 'decisions/lifecycle', basis: 'measured', source: 'the fill mix (0 to 10 each, refusals included)' },
  modelVersionBytes: { value: 1_700, unit: 'B/version', basis: 'measured', source: 'model_versions with its indexes at 10 k versions' },
  deploymentBytes: { value: 1_614, unit: 'B/deployment', basis: 'measured', source: 'deployments with its indexes at 7 k deployments' },
  deploymentsPerLifecycle: { value: 0.7, unit: 'deployments/lifecycle', basis: 'measured', source: 'the fill mix' },
  datasetVersionBytes: { value: 844, unit: 'B/dataset version', basis: 'measured', source: 'dataset_versions at 2 k versions' },
  historyBytes: {
    value: 216_683,
    unit: 'B/lifecycle',
    basis: 'measured',
    source:
      'a high-risk lifecycle history as JSON (test/fixtures/lifecycle-high-risk-deployed.json); kept by Temporal for its namespace retention and exported as evidence',
  },
  evidenceFixedBytes: {
    value: 16_384,
    unit: 'B/lifecycle',
    basis: 'assumed',
    source: 'certified-data manifest, provenance statement, checkpoints: a few KiB each (rounded up)',
  },
  requestLogBytes: {
    value: 604,
    unit: 'B/request',
    basis: 'measured',
    source:
      'gateway_requests with its indexes: 1,008,691 rows in 26 monthly partitions took 609 MB (npm run bench:gateway, 2026-11-27); payloads are kept apart, in the restricted bucket',
  },
  tritonRpsPerInstance: {
    value: 1_600,
    unit: 'requests/s per instance',
    basis: 'measured',
    source:
      'direct to Triton, one WDBC row per request, concurrency 8, the Python backend running the ONNX model on 2 shared vCPUs: 1,675/s on a quiet machine (bench:gateway, 2026-11-27); a GPU or batching gives more',
  },
  gatewayRpsPerProcess: {
    value: 320,
    unit: 'requests/s per gateway process',
    basis: 'measured',
    source:
      'through the gateway (key, use case, rate limit, durable request log before the answer), concurrency 8, 2 shared vCPUs: 326/s at load 4 to 5 (bench:gateway, 2026-11-27); the log commit, not the CPU, bounds one process',
  },
  chainAppendsPerSecond: {
    value: 495,
    unit: 'appends/s',
    basis: 'measured',
    source:
      'appendAuditEvent one at a time at 1 M events (bench:scale on a quiet 2-core machine, 2026-11-27: p50 1.55 ms, p99 7.5 ms; 21/s at load 15); one chain, one writer at a time by design',
  },
  objectPricePerGiBMonth: { value: 0.023, unit: 'USD/GiB-month', basis: 'assumed', source: 'object storage list price (WORM/Object Lock)' },
  databasePricePerGiBMonth: { value: 0.115, unit: 'USD/GiB-month', basis: 'assumed', source: 'provisioned SSD block storage for PostgreSQL' },
} as const satisfies Record<string, UnitCost>;

export interface CapacityInput {
  lifecyclesPerDay: number;
  requestsPerSecond: number;
  /** Years every evidence object and audit row is kept (the policy pack's schedule, e.g. 6 for HIPAA, 7 for SEC 17a-4). */
  retentionYears?: number;
  /** Years request logs are kept. */
  requestLogRetentionYears?: number;
  /** Days Temporal keeps a closed workflow's history (its namespace retention; the exported copy is evidence). */
  temporalRetentionDays?: number;
  /** Size of the raw dataset a lifecycle brings (kept twice: quarantine copy and certified copy). Default: WDBC, 0.115 MiB. */
  datasetMiB?: number;
  /** Share of lifecycles that bring new data (the rest reuse a certified dataset: content-addressed, stored once). */
  newDataShare?: number;
  /** Size of a trained artifact. Default: the WDBC classifier's model.onnx, 3,016 bytes. */
  artifactMiB?: number;
  /** GPU minutes a lifecycle's training takes. */
  trainingMinutes?: number;
  /** Availability zones the serving and worker fleets span (each zone sized to carry the load alone when one is lost). */
  zones?: number;
}

export interface StorageLine {
  what: string;
  perYearGiB: number;
  retainedGiB: number;
  store: 'object storage (WORM)' | 'PostgreSQL' | 'Temporal persistence';
  costPerYearAtSteadyStateUSD: number;
  basis: 'measured' | 'assumed' | 'mixed';
}

export interface CapacityReport {
  input: Required<CapacityInput>;
  storage: StorageLine[];
  totals: { perYearGiB: number; retainedGiB: number; costPerYearAtSteadyStateUSD: number };
  rates: { auditEventsPerSecond: number; chainHeadroom: number; requestsPerDay: number; lifecycleStartsPerSecond: number };
  production: Array<{ component: string; need: string; basis: 'measured' | 'assumed' | 'mixed' }>;
  warnings: string[];
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const DAY = 86_400;

export const CAPACITY_DEFAULTS: Required<Omit<CapacityInput, 'lifecyclesPerDay' | 'requestsPerSecond'>> = {
  retentionYears: 7,
  requestLogRetentionYears: 1,
  temporalRetentionDays: 30,
  datasetMiB: 0.115,
  newDataShare: 0.2,
  artifactMiB: 0.003,
  trainingMinutes: 30,
  zones: 2,
};

export class CapacityInputError extends Error {
  override name = 'CapacityInputError';
}

function check(input: Required<CapacityInput>): void {
  const limits: Record<keyof CapacityInput, [number, number]> = {
    lifecyclesPerDay: [0, 1e7],
    requestsPerSecond: [0, 1e7],
    retentionYears: [0, 100],
    requestLogRetentionYears: [0, 100],
    temporalRetentionDays: [1, 3650],
    datasetMiB: [0, 1e7],
    newDataShare: [0, 1],
    artifactMiB: [0, 1e6],
    trainingMinutes: [0, 1e5],
    zones: [1, 10],
  };
  for (const [k, [lo, hi]] of Object.entries(limits) as Array<[keyof CapacityInput, [number, number]]>) {
    const v = input[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw new CapacityInputError(`${k} must be a number from ${lo} to ${hi}`);
  }
  if (!Number.isInteger(input.zones)) throw new CapacityInputError('zones must be a whole number');
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Storage growth per year, what the retention schedules keep, their cost, and the production footprint. */
export function capacity(given: CapacityInput): CapacityReport {
  const input: Required<CapacityInput> = { ...CAPACITY_DEFAULTS, ...given };
  check(input);
  const u = UNIT_COSTS;
  const L = input.lifecyclesPerDay * 365;
  const line = (what: string, bytesPerYear: number, years: number, store: StorageLine['store'], basis: StorageLine['basis']): StorageLine => {
    const price = store === 'object storage (WORM)' ? u.objectPricePerGiBMonth.value : u.databasePricePerGiBMonth.value;
    const retained = (bytesPerYear * years) / GiB;
    return {
      what,
      perYearGiB: round(bytesPerYear / GiB, 3),
      retainedGiB: round(retained, 3),
      store,
      costPerYearAtSteadyStateUSD: round(retained * price * 12),
      basis,
    };
  };
  const registryBytes =
    u.modelVersionBytes.value +
    u.decisionsPerLifecycle.value * u.decisionBytes.value +
    u.deploymentsPerLifecycle.value * u.deploymentBytes.value +
    input.newDataShare * u.datasetVersionBytes.value;
  const storage: StorageLine[] = [
    line('artifacts (trained models)', L * input.artifactMiB * MiB, input.retentionYears, 'object storage (WORM)', 'measured'),
    line('evidence: raw and certified data', L * input.newDataShare * 2 * input.datasetMiB * MiB, input.retentionYears, 'object storage (WORM)', 'measured'),
    line(
      'evidence: manifests, provenance, exported histories',
      L * (u.evidenceFixedBytes.value + u.historyBytes.value),
      input.retentionYears,
      'object storage (WORM)',
      'mixed',
    ),
    line('audit events (hash chain)', L * u.eventsPerLifecycle.value * u.auditEventBytes.value, input.retentionYears, 'PostgreSQL', 'measured'),
    line('registry rows (versions, decisions, deployments, datasets)', L * registryBytes, input.retentionYears, 'PostgreSQL', 'measured'),
    line('workflow histories (payloads) in Temporal', L * u.historyBytes.value, input.temporalRetentionDays / 365, 'Temporal persistence', 'measured'),
    line('request logs', input.requestsPerSecond * DAY * 365 * u.requestLogBytes.value, input.requestLogRetentionYears, 'PostgreSQL', 'measured'),
  ];
  const totals = {
    perYearGiB: round(
      storage.reduce((s, l) => s + l.perYearGiB, 0),
      3,
    ),
    retainedGiB: round(
      storage.reduce((s, l) => s + l.retainedGiB, 0),
      3,
    ),
    costPerYearAtSteadyStateUSD: round(storage.reduce((s, l) => s + l.costPerYearAtSteadyStateUSD, 0)),
  };
  const auditEventsPerSecond = (input.lifecyclesPerDay * u.eventsPerLifecycle.value) / DAY;
  const chainHeadroom = auditEventsPerSecond > 0 ? u.chainAppendsPerSecond.value / auditEventsPerSecond : Infinity;
  const gpusBusy = (input.lifecyclesPerDay * input.trainingMinutes) / (24 * 60);
  const tritonPerZone = Math.ceil(input.requestsPerSecond / u.tritonRpsPerInstance.value);
  const gatewaysPerZone = Math.ceil(input.requestsPerSecond / u.gatewayRpsPerProcess.value);
  const requestRowsPerMonth = input.requestsPerSecond * DAY * 30;
  const warnings: string[] = [];
  if (chainHeadroom < 10) {
    warnings.push(
      `the audit chain takes about ${u.chainAppendsPerSecond.value} appends/s one at a time; ${round(auditEventsPerSecond)} events/s leaves ${round(chainHeadroom, 1)}× headroom: batch appends (recordDecisions does) or shard the chain`,
    );
  }
  if (input.requestsPerSecond > u.chainAppendsPerSecond.value / 10) {
    warnings.push(
      'request logs must not go through the hash chain one by one: log them to a partitioned table and anchor each partition (a digest per batch) in the chain',
    );
  }
  const production: CapacityReport['production'] = [
    {
      component: 'Temporal',
      need: `one cluster on PostgreSQL (3 frontend, 3 history, 3 matching, 2 worker services across ${input.zones} zones); ${round((input.lifecyclesPerDay * 300) / DAY, 3)} history events/s (≈300 per lifecycle) is far below one shard's capacity`,
      basis: 'mixed',
    },
    {
      component: 'PostgreSQL (registry and audit)',
      need: `a primary with a synchronous replica in another zone; audit_events and request logs partitioned by month (${Math.round((L / 12) * u.eventsPerLifecycle.value).toLocaleString('en-US')} audit rows/month, ${round(requestRowsPerMonth / 1e6, 1)} M request rows/month); ${Math.round(totals.retainedGiB).toLocaleString('en-US')} GiB retained in all stores at steady state`,
      basis: 'mixed',
    },
    {
      component: 'control workers',
      need: `${Math.max(2, input.zones)} (one per zone at least); a lifecycle's control-plane work is under a second of CPU (bench:governed), so one worker carries thousands a day`,
      basis: 'measured',
    },
    {
      component: 'GPU training workers',
      need: `${round(gpusBusy, 1)} GPUs busy on average at ${input.trainingMinutes} min per lifecycle; provision ${Math.max(1, Math.ceil(gpusBusy * 2))} for peaks (2× the mean)`,
      basis: 'assumed',
    },
    {
      component: 'serving (Triton)',
      need: `${tritonPerZone} instance(s) per zone × ${input.zones} zones, each zone able to carry ${input.requestsPerSecond} requests/s alone (≈${u.tritonRpsPerInstance.value}/s per instance measured on 2 vCPUs)`,
      basis: 'measured',
    },
    {
      component: 'inference gateway',
      need: `${gatewaysPerZone} process(es) per zone × ${input.zones} zones behind a load balancer (≈${u.gatewayRpsPerProcess.value}/s per process measured, bounded by the durable request-log commit); the request log's group commits write ${input.requestsPerSecond} rows/s`,
      basis: 'measured',
    },
  ];
  return {
    input,
    storage,
    totals,
    rates: {
      auditEventsPerSecond: round(auditEventsPerSecond, 4),
      chainHeadroom: Number.isFinite(chainHeadroom) ? round(chainHeadroom, 1) : chainHeadroom,
      requestsPerDay: input.requestsPerSecond * DAY,
      lifecycleStartsPerSecond: round(input.lifecyclesPerDay / DAY, 4),
    },
    production,
    warnings,
  };
}

export function renderCapacity(r: CapacityReport): string {
  const pad = (s: string, n: number) => s.padEnd(n);
  const num = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : String(x));
  return [
    `load: ${r.input.lifecyclesPerDay} lifecycles/day, ${r.input.requestsPerSecond} requests/s; retention ${r.input.retentionYears} y (evidence, audit), ${r.input.requestLogRetentionYears} y (request logs), ${r.input.temporalRetentionDays} d (Temporal)`,
    '',
    `${pad('storage', 60)}${pad('GiB/year', 12)}${pad('retained GiB', 14)}${pad('USD/year', 11)}basis`,
    ...r.storage.map(
      (l) => `${pad(l.what, 60)}${pad(num(l.perYearGiB), 12)}${pad(num(l.retainedGiB), 14)}${pad(num(l.costPerYearAtSteadyStateUSD), 11)}${l.basis}`,
    ),
    `${pad('total', 60)}${pad(num(r.totals.perYearGiB), 12)}${pad(num(r.totals.retainedGiB), 14)}${pad(num(r.totals.costPerYearAtSteadyStateUSD), 11)}`,
    '',
    `audit events: ${r.rates.auditEventsPerSecond}/s (chain headroom ${r.rates.chainHeadroom}×); requests: ${num(r.rates.requestsPerDay)}/day`,
    '',
    'production',
    ...r.production.map((p) => `  ${pad(p.component, 32)}${p.need}  [${p.basis}]`),
    ...(r.warnings.length ? ['', ...r.warnings.map((w) => `warning: ${w}`)] : []),
    '',
    'retained = per year × years kept (WORM objects cannot be deleted sooner); cost at steady state = retained × price × 12. Measured vs assumed unit costs: docs/capacity.md, `--json` (unitCosts).',
  ].join('\n');
}
