import type { Env } from '../config/env.ts';
import type { Logger } from '../log.ts';

export interface ComponentStatus {
  endpoint: string;
  healthy: boolean;
  /** true when `factory dev up` started it (and `down` will stop it); false when it was found running. */
  managed: boolean;
  detail?: string;
}

export interface StackContext {
  env: Env;
  log: Logger;
}

/**
 * One piece of the local stack. Adding a component (Slurm, say) is one module implementing this and
 * one line in `components/index.ts`.
 */
export interface Component {
  readonly name: string;
  endpoint(ctx: StackContext): string;
  /** Is it answering now? Never throws. */
  healthy(ctx: StackContext): Promise<boolean>;
  /** Starts it (detached) when it is not healthy. Undefined for components we never start (an external Postgres). */
  start?(ctx: StackContext): Promise<void>;
  /** How long a cold start may take before it is reported as failed. */
  readonly startTimeoutMs: number;
  /** Idempotent setup run on every `up` once healthy: migrations, buckets, namespace settings. */
  prepare?(ctx: StackContext): Promise<void>;
  /** Where its log is, and what to try when it does not come up. */
  readonly hint: string;
  /** Extra status details (e.g. the Web UI URL). */
  describe?(ctx: StackContext): Promise<string | undefined>;
}

export class ComponentStartError extends Error {
  override name = 'ComponentStartError';
  constructor(
    readonly component: string,
    message: string,
    readonly logTail: string,
    readonly hint: string,
  ) {
    super(`${component}: ${message}\n--- last lines of its log ---\n${logTail}\n--- hint: ${hint}`);
  }
}
