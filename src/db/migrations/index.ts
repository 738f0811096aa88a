import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001_registry_and_audit.ts';
import * as m0002 from './0002_audit_writer_role.ts';
import * as m0003 from './0003_registry_facts_guarded.ts';
import * as m0004 from './0004_lifecycle_runs_and_terminal_states.ts';
import * as m0005 from './0005_signed_approvals.ts';
import * as m0006 from './0006_least_privilege_roles.ts';
import * as m0007 from './0007_model_provenance.ts';
import * as m0009 from './0009_registry_lookup_indexes.ts';
import * as m0010 from './0010_gateway_requests.ts';
import * as m0008 from './0008_history_exports.ts';
import * as m0011 from './0011_serving_states.ts';
import * as m0012 from './0012_rollbacks.ts';
import * as m0013 from './0013_retirements.ts';
import * as m0016 from './0016_legal_holds_and_retention.ts';
import * as m0018 from './0018_rollback_under_legal_hold.ts';
import * as m0014 from './0014_deployment_monitoring.ts';
import * as m0019 from './0019_artifact_promotions.ts';
import * as m0021 from './0021_revalidation_reviews.ts';
import * as m0022 from './0022_audit_canonical_text.ts';

/** Migrations are listed in code (not read from a folder) so they bundle and type-check with the rest. */
export const migrations: Record<string, Migration> = {
  '0001_registry_and_audit': m0001,
  '0002_audit_writer_role': m0002,
  '0003_registry_facts_guarded': m0003,
  '0004_lifecycle_runs_and_terminal_states': m0004,
  '0005_signed_approvals': m0005,
  '0006_least_privilege_roles': m0006,
  '0007_model_provenance': m0007,
  '0009_registry_lookup_indexes': m0009,
  '0010_gateway_requests': m0010,
  '0008_history_exports': m0008,
  '0011_serving_states': m0011,
  '0012_rollbacks': m0012,
  '0013_retirements': m0013,
  '0016_legal_holds_and_retention': m0016,
  '0018_rollback_under_legal_hold': m0018,
  '0014_deployment_monitoring': m0014,
  '0019_artifact_promotions': m0019,
  '0021_revalidation_reviews': m0021,
  '0022_audit_canonical_text': m0022,
};

export const migrationProvider: MigrationProvider = { getMigrations: async () => migrations };
