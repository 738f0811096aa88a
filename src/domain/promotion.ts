import * as z from 'zod';
import { siteSchema, transferPurposeSchema } from '../policy/schema.ts';
import { emailSchema, lifecycleInputSchema } from './lifecycle.ts';

export const PROMOTION_WORKFLOW = 'artifactPromotion';

/** Input of `artifactPromotion` (stable API). */
export const promotionInputSchema = z.strictObject({
  modelName: lifecycleInputSchema.shape.modelName,
  version: z.number().int().min(1).max(999_999_999),
  toSite: siteSchema.shape.name,
  /** The business purpose of the transfer: one of the pack's transferPurposes, recorded with it. */
  purpose: transferPurposeSchema,
  /** Who asks for the promotion (recorded). */
  requestedBy: emailSchema.max(320),
});
export type PromotionInput = z.infer<typeof promotionInputSchema>;

/** One promotion per version and site: a retried `factory promote` finds the running (or finished) one. */
export function promotionWorkflowId(i: Pick<PromotionInput, 'modelName' | 'version' | 'toSite'>): string {
  return `promote-${i.modelName}-${i.version}-${i.toSite}`;
}

/** Where the site's copy of an object goes: the site's prefix, then the key it has at home. */
export function siteKey(prefix: string, homeKey: string): string {
  return prefix ? `${prefix.replace(/\/+$/, '')}/${homeKey}` : homeKey;
}

export interface PromotedObject {
  from: string;
  to: string;
  digest: string;
  versionId?: string;
}

export interface PromotionOutcome {
  outcome: 'promoted';
  promotionId: string;
  modelName: string;
  version: number;
  fromSite: string;
  toSite: string;
  purpose: string;
  artifact: PromotedObject;
  provenance: PromotedObject & { keyId: string };
  promotedAt: string;
}

/** The site a version lives at before any promotion: where the factory trained and registered it. */
export const HOME_SITE = 'home';
