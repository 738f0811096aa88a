// Every workflow type the control worker registers. Workflow type names are stable API (README).
export { smokeTest } from './smoke.ts';
export { modelLifecycle } from './lifecycle.ts';
export { noopChain } from './bench.ts';
export { auditCheckpoint } from './audit-checkpoint.ts';
export { historyArchiver } from './history-archiver.ts';
export { modelRetirement } from './retirement.ts';
export { evidenceExport } from './evidence-export.ts';
export { legalHold, retentionSweep } from './governance.ts';
export { modelRollback, rollbackDrill } from './rollback.ts';
export { deploymentMonitor } from './monitor.ts';
export { artifactPromotion } from './promotion.ts';
export { revalidationReview, revalidationSweep } from './revalidation.ts';
