import type { Command } from 'commander';
import { CAPACITY_DEFAULTS, UNIT_COSTS, capacity, renderCapacity } from '../capacity/model.ts';
import { strictDecimal, strictInt } from './options.ts';
import { createOutput } from './output.ts';

export function registerCapacity(program: Command): void {
  const d = CAPACITY_DEFAULTS;
  program
    .command('capacity')
    .description('storage growth per year, retention cost and the production footprint for a load, from measured unit costs (docs/capacity.md)')
    .requiredOption('--lifecycles-per-day <n>', 'lifecycles started per day', strictInt(0, 10_000_000))
    .requiredOption('--requests-per-second <n>', 'predictions served per second', strictInt(0, 10_000_000))
    .option('--retention-years <n>', 'years evidence and audit rows are kept (the policy pack schedule)', strictDecimal(0, 100), d.retentionYears)
    .option('--request-log-retention-years <n>', 'years request logs are kept', strictDecimal(0, 100), d.requestLogRetentionYears)
    .option('--temporal-retention-days <n>', "Temporal's namespace retention", strictInt(1, 3650), d.temporalRetentionDays)
    .option('--dataset-mib <n>', 'raw dataset size a lifecycle brings', strictDecimal(0, 1e7), d.datasetMiB)
    .option('--new-data-share <n>', 'share of lifecycles bringing new data (0 to 1)', strictDecimal(0, 1), d.newDataShare)
    .option('--artifact-mib <n>', 'trained artifact size', strictDecimal(0, 1e6), d.artifactMiB)
    .option('--training-minutes <n>', 'GPU minutes per lifecycle', strictDecimal(0, 1e5), d.trainingMinutes)
    .option('--zones <n>', 'availability zones', strictInt(1, 10), d.zones)
    .option('--json', 'print JSON (with the unit costs and whether each was measured)')
    .action((opts) => {
      const report = capacity({
        lifecyclesPerDay: opts.lifecyclesPerDay,
        requestsPerSecond: opts.requestsPerSecond,
        retentionYears: opts.retentionYears,
        requestLogRetentionYears: opts.requestLogRetentionYears,
        temporalRetentionDays: opts.temporalRetentionDays,
        datasetMiB: opts.datasetMib,
        newDataShare: opts.newDataShare,
        artifactMiB: opts.artifactMib,
        trainingMinutes: opts.trainingMinutes,
        zones: opts.zones,
      });
      createOutput(!!opts.json).result({ ...report, unitCosts: UNIT_COSTS }, () => renderCapacity(report));
    });
}
