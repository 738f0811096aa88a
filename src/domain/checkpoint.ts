/** What a checkpoint write reports to the workflow that asked for it (small: it lands in the history). */
export interface CheckpointSummary {
  written: boolean;
  why?: 'empty' | 'unchanged' | 'refused';
  seq?: string;
  eventCount?: number;
  uri?: string;
  millis: number;
}
