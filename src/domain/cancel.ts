import * as z from 'zod';

/**
 * Temporal's cancellation carries no reason, so `factory lifecycle cancel` first sends this signal
 * with who asks and why, then requests cancellation. The workflow keeps the last request it received
 * and records it in the terminal audit event `lifecycle.cancelled`. Stable API (README, Temporal names).
 */
export const CANCEL_REQUEST_SIGNAL = 'cancelRequest';

/** No control characters (terminal escapes, NUL, newlines that forge lines, bidi controls) nor lone surrogates in text the trail keeps. */
const noControls = (s: string) =>
  !/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(
    s,
  );

export const cancelRequestSchema = z.object({
  /** Who asks (an e-mail or a user name): the audit event's actor. */
  by: z.string().trim().min(1).max(320).refine(noControls, 'no control characters'),
  /** Why: kept in the audit trail. */
  reason: z.string().trim().min(1).max(1_000).refine(noControls, 'no control characters'),
});
export type CancelRequest = z.output<typeof cancelRequestSchema>;
