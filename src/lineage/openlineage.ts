import { createHash } from 'node:crypto';
import type { ColumnLineage } from '../datasets/lineage.ts';
import type { DatasetSchema } from '../datasets/schema.ts';

/**
 * OpenLineage RunEvents (spec 2-0-2) as the factory emits them: one run per stage attempt, START then
 * COMPLETE or FAIL, its parent the lifecycle's Temporal run. Standard facets carry the versions the
 * official Python client (openlineage-python 1.54) names; the factory's own facets are prefixed
 * `factory_` and described in docs/openlineage-facets.json.
 */
export const OPENLINEAGE_EVENT_SCHEMA = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';
export const PRODUCER = 'https://github.com/ai-factory/ai-factory/tree/main/activities';
const CUSTOM_SCHEMA = 'https://github.com/ai-factory/ai-factory/blob/main/docs/openlineage-facets.json#/$defs/';

export const FACET_SCHEMAS = {
  schema: 'https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
  dataSource: 'https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet',
  ownership: 'https://openlineage.io/spec/facets/1-0-1/OwnershipDatasetFacet.json#/$defs/OwnershipDatasetFacet',
  columnLineage: 'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet',
  jobType: 'https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
  errorMessage: 'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
  parent: 'https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet',
} as const;

export type Facet = { _producer: string; _schemaURL: string } & Record<string, unknown>;
export interface OlDataset {
  namespace: string;
  name: string;
  facets?: Record<string, Facet>;
}
export interface RunEvent {
  eventType: 'START' | 'COMPLETE' | 'FAIL';
  eventTime: string;
  producer: string;
  schemaURL: string;
  run: { runId: string; facets: Record<string, Facet> };
  job: { namespace: string; name: string; facets: Record<string, Facet> };
  inputs: OlDataset[];
  outputs: OlDataset[];
}

/** A standard facet (its name's schema) or one of the factory's (`factory_<name>`). */
export function facet(schemaURL: string, body: Record<string, unknown>): Facet {
  return { _producer: PRODUCER, _schemaURL: schemaURL, ...body };
}
export function customFacet(name: string, body: Record<string, unknown>): Facet {
  return facet(`${CUSTOM_SCHEMA}${name}`, body);
}

/** A stable UUID (RFC 9562 version 8, name-based) for a stage attempt: a retried emission names the same run. */
export function runUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** OpenLineage dataset naming: an S3 object is `s3://<bucket>` + key; a local file is `file` + its path. */
export function datasetRef(uri: string): { namespace: string; name: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (m) return { namespace: `s3://${m[1]}`, name: m[2]! };
  return { namespace: 'file', name: uri };
}

/** The facets a dataset carries from its schema: fields, source, owner, classification per column, derivations. */
export function schemaFacets(schema: DatasetSchema, columns: ColumnLineage[], derivationsSha256: string, certifiedOnly: boolean): Record<string, Facet> {
  const shown = columns.filter((c) => !certifiedOnly || c.certified);
  return {
    schema: facet(FACET_SCHEMAS.schema, {
      fields: shown.map((c) => ({ name: c.name, type: c.role === 'feature' ? 'DOUBLE' : 'STRING', description: `${c.role}, ${c.classification}` })),
    }),
    ...(schema.governance
      ? {
          dataSource: facet(FACET_SCHEMAS.dataSource, { name: schema.governance.sourceSystem }),
          ownership: facet(FACET_SCHEMAS.ownership, { owners: [{ name: `user:${schema.governance.owner}`, type: 'owner' }] }),
        }
      : {}),
    factory_classification: customFacet('ClassificationDatasetFacet', {
      classification: schema.classification,
      columns: shown.map((c) => ({ name: c.name, classification: c.classification })),
      ...(schema.governance ? { legalBasis: schema.governance.legalBasis, purposes: schema.governance.purposes, retention: schema.governance.retention } : {}),
    }),
    ...(schema.derivations ? { factory_derivations: customFacet('DerivationsDatasetFacet', { derivations: schema.derivations, derivationsSha256 }) } : {}),
  };
}

/** Certification copies the certified columns unchanged from the raw file: identity column lineage. */
export function identityColumnLineage(from: { namespace: string; name: string }, columns: ColumnLineage[]): Facet {
  return facet(FACET_SCHEMAS.columnLineage, {
    fields: Object.fromEntries(
      columns
        .filter((c) => c.certified)
        .map((c) => [
          c.name,
          {
            inputFields: [
              { ...from, field: c.name, transformations: [{ type: 'DIRECT', subtype: 'IDENTITY', description: 'certified unchanged', masking: false }] },
            ],
          },
        ]),
    ),
  });
}

/** The model's score derives from every feature through the declared derivations (standardisation inside the model). */
export function modelColumnLineage(from: { namespace: string; name: string }, schema: DatasetSchema): Facet {
  const described = schema.derivations?.map((d) => `${d.transform} (${d.fittedOn})`).join(', ') ?? 'standardize (training-split)';
  return facet(FACET_SCHEMAS.columnLineage, {
    fields: {
      score: {
        inputFields: schema.features.map((f) => ({
          ...from,
          field: f.name,
          transformations: [{ type: 'DIRECT', subtype: 'TRANSFORMATION', description: described, masking: false }],
        })),
      },
    },
    dataset: [
      { ...from, field: schema.label.column, transformations: [{ type: 'INDIRECT', subtype: 'FILTER', description: 'training label', masking: false }] },
    ],
  });
}

export function runEvent(e: {
  eventType: RunEvent['eventType'];
  eventTime: string;
  runId: string;
  namespace: string;
  job: string;
  parent: { runId: string; job: string };
  inputs?: OlDataset[];
  outputs?: OlDataset[];
  runFacets?: Record<string, Facet>;
  error?: string;
}): RunEvent {
  return {
    eventType: e.eventType,
    eventTime: e.eventTime,
    producer: PRODUCER,
    schemaURL: OPENLINEAGE_EVENT_SCHEMA,
    run: {
      runId: e.runId,
      facets: {
        parent: facet(FACET_SCHEMAS.parent, { run: { runId: e.parent.runId }, job: { namespace: e.namespace, name: e.parent.job } }),
        ...(e.error !== undefined
          ? { errorMessage: facet(FACET_SCHEMAS.errorMessage, { message: e.error.slice(0, 4_000), programmingLanguage: 'TYPESCRIPT' }) }
          : {}),
        ...e.runFacets,
      },
    },
    job: {
      namespace: e.namespace,
      name: e.job,
      facets: { jobType: facet(FACET_SCHEMAS.jobType, { processingType: 'BATCH', integration: 'AI_FACTORY', jobType: 'TASK' }) },
    },
    inputs: e.inputs ?? [],
    outputs: e.outputs ?? [],
  };
}
