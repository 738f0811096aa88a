import { defineSearchAttributeKey } from '@temporalio/common';

/**
 * Custom search attributes: stable API (saved filters in the Web UI depend on these names).
 * `PendingRoles` lists the approver roles a lifecycle still waits for, so "waiting for my role" is
 * the filter `PendingRoles = 'compliance'`. `MonitoringReview` is `open` on a deployment monitor
 * whose breach waits for an acknowledgement (`MonitoringReview = 'open'`), else `none`.
 * `RevalidationReview` is set on a `revalidationReview` workflow: `open` while it waits for a
 * validator, then `revalidated`, `failed` or `timed-out` (`RevalidationReview = 'open'` lists the due ones).
 */
export const searchAttributes = {
  ModelName: 'Keyword',
  RiskTier: 'Keyword',
  LifecycleStage: 'Keyword',
  PendingRoles: 'KeywordList',
  MonitoringReview: 'Keyword',
  RevalidationReview: 'Keyword',
} as const;

export const ModelNameKey = defineSearchAttributeKey('ModelName', 'KEYWORD');
export const RiskTierKey = defineSearchAttributeKey('RiskTier', 'KEYWORD');
export const LifecycleStageKey = defineSearchAttributeKey('LifecycleStage', 'KEYWORD');
export const PendingRolesKey = defineSearchAttributeKey('PendingRoles', 'KEYWORD_LIST');
export const MonitoringReviewKey = defineSearchAttributeKey('MonitoringReview', 'KEYWORD');
export const RevalidationReviewKey = defineSearchAttributeKey('RevalidationReview', 'KEYWORD');
