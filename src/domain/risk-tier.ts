import * as z from 'zod';

/**
 * A model's risk tier: the pack (src/policy/schema.ts) sets what each tier requires. Its own module,
 * without the pack's schema: the domain types that name a tier (a lifecycle's input) need not load
 * the pack's key parsing and its curves (what `factory trace` loads: docs/benchmarks.md).
 */
export const RISK_TIERS = ['low', 'medium', 'high'] as const;
export const riskTierSchema = z.enum(RISK_TIERS);
export type RiskTier = z.infer<typeof riskTierSchema>;
