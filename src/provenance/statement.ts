import type { KeyObject } from 'node:crypto';
import * as z from 'zod';
import { type DsseEnvelope, signEnvelope, verifyEnvelope } from '../signing/dsse.ts';
import type { FactoryKey } from '../signing/factory-key.ts';

/**
 * Signed provenance of a model version: an in-toto Statement v1 whose predicate is SLSA Provenance
 * v1, wrapped in a DSSE envelope signed by the factory key. Pure: building, signing and checking
 * touch no store (the activities fetch and store; `trace` verifies with the same code).
 * Specs: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md,
 * https://slsa.dev/spec/v1.0/provenance.
 */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** Names this template of externalParameters / internalParameters / resolvedDependencies (docs/design.md, "Signed provenance"). */
export const BUILD_TYPE = 'urn:ai-factory:buildtype:model-training:v1';
/** The most an envelope may weigh when read back: ours are a few KiB. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;

/** The names of the resolved dependencies, each a ResourceDescriptor the deploy check looks up by name. */
export const DEPENDENCY = {
  rawDataset: 'raw-dataset',
  certifiedManifest: 'certified-manifest',
  certifiedData: 'certified-data',
  source: 'source',
  image: 'image',
  trainerCode: 'trainer-code',
  trainingEnvironment: 'training-environment',
  policy: 'policy-pack',
  evaluator: 'evaluator-code',
} as const;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const digestSet = z.record(z.string().max(64), z.string().max(128));
const resourceDescriptor = z.object({
  name: z.string().max(1_000).optional(),
  uri: z.string().max(4_000).optional(),
  digest: digestSet.optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
});
export type ResourceDescriptor = z.infer<typeof resourceDescriptor>;

/** What the factory checks of a statement; other fields are carried, not interpreted. */
export const provenanceStatementSchema = z.object({
  _type: z.literal(STATEMENT_TYPE),
  subject: z
    .array(z.object({ name: z.string().max(1_000), digest: z.object({ sha256: hex64 }).catchall(z.string()) }))
    .min(1)
    .max(16),
  predicateType: z.literal(SLSA_PROVENANCE_V1),
  predicate: z.object({
    buildDefinition: z.object({
      buildType: z.string().min(1).max(1_000),
      externalParameters: z.record(z.string(), z.unknown()),
      internalParameters: z.record(z.string(), z.unknown()).optional(),
      resolvedDependencies: z.array(resourceDescriptor).max(64).optional(),
    }),
    runDetails: z.object({
      builder: z.object({ id: z.string().min(1).max(1_000) }).passthrough(),
      metadata: z.object({ invocationId: z.string().max(1_000).optional(), startedOn: z.string().optional(), finishedOn: z.string().optional() }).optional(),
      byproducts: z.array(resourceDescriptor).max(64).optional(),
    }),
  }),
});
export type ProvenanceStatement = z.infer<typeof provenanceStatementSchema>;

/** Everything a model version's provenance records; the activity gathers it from the lifecycle. */
export interface ProvenanceFacts {
  artifact: { name: string; uri: string; digest: string };
  dataset: { name: string; rawUri: string; rawSha256: string; manifestUri: string; manifestDigest: string; certifiedUri: string; certifiedSha256: string };
  commitSha: string;
  imageDigest: string;
  modelName: string;
  riskTier: string;
  training: { epochs: number; seed: number };
  /** Measured by the trainer in its own interpreter (trainers/train.py). */
  trainerCode: { digest: string; files: Array<{ path: string; sha256: string }> };
  trainingEnvironment: { uri: string; digest: string; python: string; packages: number };
  policy: { digest: string; source: string; version: string };
  evaluator: { id: string; codeDigest: string; files: Array<{ path: string; sha256: string }>; taskQueue: string };
  builder: { id: string; taskQueue: string; namespace: string };
  workflow: { id: string; runId: string };
  startedOn: string;
  finishedOn: string;
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, '');

/** The in-toto Statement v1 with its SLSA Provenance v1 predicate. Deterministic: the same facts give the same bytes. */
export function buildProvenanceStatement(f: ProvenanceFacts): ProvenanceStatement {
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: f.artifact.name, digest: { sha256: hexOf(f.artifact.digest) } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          modelName: f.modelName,
          riskTier: f.riskTier,
          commit: f.commitSha,
          imageDigest: f.imageDigest,
          dataset: { name: f.dataset.name, uri: f.dataset.rawUri },
          training: f.training,
        },
        internalParameters: {
          policyDigest: f.policy.digest,
          trainerCodeDigest: f.trainerCode.digest,
          trainingEnvironmentDigest: f.trainingEnvironment.digest,
          evaluator: { id: f.evaluator.id, codeDigest: f.evaluator.codeDigest, taskQueue: f.evaluator.taskQueue },
          workflow: f.workflow,
        },
        resolvedDependencies: [
          { name: DEPENDENCY.rawDataset, uri: f.dataset.rawUri, digest: { sha256: hexOf(f.dataset.rawSha256) } },
          { name: DEPENDENCY.certifiedManifest, uri: f.dataset.manifestUri, digest: { sha256: hexOf(f.dataset.manifestDigest) } },
          { name: DEPENDENCY.certifiedData, uri: f.dataset.certifiedUri, digest: { sha256: hexOf(f.dataset.certifiedSha256) } },
          { name: DEPENDENCY.source, digest: { gitCommit: f.commitSha } },
          { name: DEPENDENCY.image, digest: { sha256: hexOf(f.imageDigest) } },
          { name: DEPENDENCY.trainerCode, digest: { sha256: hexOf(f.trainerCode.digest) }, annotations: { files: f.trainerCode.files } },
          {
            name: DEPENDENCY.trainingEnvironment,
            uri: f.trainingEnvironment.uri,
            digest: { sha256: hexOf(f.trainingEnvironment.digest) },
            annotations: {
              python: f.trainingEnvironment.python,
              packages: f.trainingEnvironment.packages,
              measured: 'importlib.metadata in the training interpreter',
            },
          },
          { name: DEPENDENCY.policy, uri: f.policy.source, digest: { sha256: hexOf(f.policy.digest) }, annotations: { version: f.policy.version } },
          { name: DEPENDENCY.evaluator, uri: f.evaluator.id, digest: { sha256: hexOf(f.evaluator.codeDigest) }, annotations: { files: f.evaluator.files } },
        ],
      },
      runDetails: {
        builder: { id: f.builder.id, version: { temporalNamespace: f.builder.namespace, taskQueue: f.builder.taskQueue } },
        metadata: { invocationId: `${f.workflow.id}/${f.workflow.runId}`, startedOn: f.startedOn, finishedOn: f.finishedOn },
        byproducts: [{ name: 'training-environment-measured', uri: f.trainingEnvironment.uri, digest: { sha256: hexOf(f.trainingEnvironment.digest) } }],
      },
    },
  };
}

/** The statement's canonical bytes (key order as built) in a DSSE envelope signed by the factory key. */
export function signProvenanceStatement(key: Pick<FactoryKey, 'privateKey' | 'keyId'>, statement: ProvenanceStatement): DsseEnvelope {
  return signEnvelope(key, IN_TOTO_PAYLOAD_TYPE, JSON.stringify(statement));
}

/** What the registry holds of a version; the provenance must agree with each. */
export interface RegistryFacts {
  artifactDigest: string;
  datasetManifestDigest: string;
  commitSha: string;
  policyDigest: string;
  imageDigest: string;
}

export type ProvenanceVerdict = { ok: true; keyId: string; statement: ProvenanceStatement } | { ok: false; reason: string; keyId?: string };

/**
 * Checks an envelope's bytes: parsed as DSSE, signed by a trusted factory key over the in-toto
 * payload type, a Statement v1 with a SLSA Provenance v1 predicate, whose subject is the artifact the
 * registry holds and whose dataset manifest, commit, policy and image digests are the registry's.
 * The first disagreement is the reason.
 */
export function checkProvenance(envelopeBytes: Uint8Array, trusted: readonly KeyObject[], registry: RegistryFacts): ProvenanceVerdict {
  if (envelopeBytes.length > MAX_ENVELOPE_BYTES) return { ok: false, reason: `the envelope is ${envelopeBytes.length} bytes, more than ${MAX_ENVELOPE_BYTES}` };
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(envelopeBytes).toString('utf8'));
  } catch {
    return { ok: false, reason: 'the envelope is not JSON' };
  }
  if (!trusted.length) return { ok: false, reason: 'no trusted factory key to verify with (set FACTORY_SIGNING_KEY_FILE)' };
  const verdict = verifyEnvelope(raw, trusted, IN_TOTO_PAYLOAD_TYPE);
  if (!verdict.ok) return verdict;
  let payload: unknown;
  try {
    payload = JSON.parse(verdict.payload.toString('utf8'));
  } catch {
    return { ok: false, keyId: verdict.keyId, reason: 'the signed payload is not JSON' };
  }
  const parsed = provenanceStatementSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      keyId: verdict.keyId,
      reason: `not an in-toto Statement v1 with a SLSA Provenance v1 predicate: ${issue?.path.join('.')}: ${issue?.message}`,
    };
  }
  const s = parsed.data;
  const mismatch = (what: string, recorded: string | undefined, expected: string) =>
    ({ ok: false, keyId: verdict.keyId, reason: `the provenance's ${what} is ${recorded ?? '(absent)'}, the registry holds ${expected}` }) as const;
  const subjects = s.subject.map((x) => `sha256:${x.digest.sha256}`);
  if (!subjects.includes(registry.artifactDigest)) return mismatch('subject digest', subjects.join(', '), registry.artifactDigest);
  const dep = (name: string) => s.predicate.buildDefinition.resolvedDependencies?.find((d) => d.name === name)?.digest;
  const sha = (name: string) => {
    const d = dep(name)?.sha256;
    return d === undefined ? undefined : `sha256:${d}`;
  };
  if (sha(DEPENDENCY.certifiedManifest) !== registry.datasetManifestDigest)
    return mismatch('certified manifest digest', sha(DEPENDENCY.certifiedManifest), registry.datasetManifestDigest);
  if (dep(DEPENDENCY.source)?.gitCommit !== registry.commitSha) return mismatch('commit', dep(DEPENDENCY.source)?.gitCommit, registry.commitSha);
  if (sha(DEPENDENCY.policy) !== registry.policyDigest) return mismatch('policy digest', sha(DEPENDENCY.policy), registry.policyDigest);
  if (sha(DEPENDENCY.image) !== registry.imageDigest) return mismatch('image digest', sha(DEPENDENCY.image), registry.imageDigest);
  return { ok: true, keyId: verdict.keyId, statement: s };
}
