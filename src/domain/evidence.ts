import * as z from 'zod';

/** Pure names and shapes of the evidence export (no I/O: workflow-safe). Temporal names are stable API (README). */
export const EVIDENCE_EXPORT_WORKFLOW = 'evidenceExport';
/** The audit kind recording an export: who exported which version, for which case. */
export const EVIDENCE_EXPORTED = 'evidence.exported';

const noControl = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s), 'no control characters');

export const evidenceExportInputSchema = z
  .object({
    model: z.string().min(1).max(200).pipe(noControl(200)),
    version: z.number().int().min(1).max(1_000_000_000),
    /** The examination or request this export answers (a case number), recorded with the export. */
    case: noControl(200).nullable(),
    actor: z.string().min(1).max(320).pipe(noControl(320)),
  })
  .strict();
export type EvidenceExportInput = z.infer<typeof evidenceExportInputSchema>;

export interface EvidenceExportSummary {
  model: string;
  version: number;
  /** The lifecycle's workflow id. */
  workflowId: string;
  /** The evidenceExport workflow's id. */
  exportWorkflowId: string;
  case: string | null;
  actor: string;
  /** The pack, under Object Lock in the evidence bucket. */
  uri: string;
  digest: string;
  bytes: number;
  files: number;
  keyId: string;
  checkpointSeq: string;
  auditEventId: string;
  exportedAt: string;
}

/** The export's workflow id: one per request (exports at different times hold different records). */
export function evidenceExportWorkflowId(model: string, version: number, requestId: string): string {
  return `evidence-export/${model}@${version}/${requestId}`;
}
