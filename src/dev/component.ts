import type { Env } from '../config/env.ts';
import type { Logger } from '../log.ts';

export interface ComponentStatus {
  endpoint: string;
  healthy: boolean;
  /** true when `factory dev up` started it (and `down` will stop it); false when it was found running. */
  managed: boolean;
  detail?: string;
  /** Component-specific facts for `dev status --json` (the S3 journal, the policy pack in force). */
  facts?: Record<string, unknown>;
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
  /**
   * After a start: is the new process serving? Defaults to `healthy`. The workers answer this without
   * their staleness checks: a source edited while they start makes them stale for the next `up`,
   * not a failed start.
   */
  ready?(ctx: StackContext): Promise<boolean>;
  /** How long a cold start may take before it is reported as failed. */
  readonly startTimeoutMs: number;
  /** Idempotent setup run on every `up` once healthy: migrations, buckets, namespace settings. */
  prepare?(ctx: StackContext): Promise<void>;
  /** Where its log is, and what to try when it does not come up. */
  readonly hint: string;
  /** Extra status details (e.g. the Web UI URL). */
  describe?(ctx: StackContext): Promise<string | undefined>;
  /** Facts shown by `dev status --json` beside the health; never throws. */
  facts?(ctx: StackContext): Promise<Record<string, unknown> | undefined>;
  /**
   * Where a start would listen, each with the variable that names it. `up` refuses to start on a
   * host that is not this machine's loopback, or on a port something else already holds.
   */
  binds?(ctx: StackContext): Bind[];
  /**
   * Checks the configuration the component would run with (the policy pack, for the workers);
   * throws a StackRefusal naming what is wrong. Runs before anything is started or stopped.
   */
  validate?(ctx: StackContext): Promise<void>;
}

export interface Bind {
  host: string;
  port: number;
  /** The variable that sets it, for the refusal message. */
  variable: string;
}

/**
 * `up` will not do what was asked because doing it would break something (stop a server it cannot
 * replace, start one where it cannot listen, run workers on a broken policy pack). Nothing was
 * stopped; the message says why and what to change.
 */
export class StackRefusal extends Error {
  override name = 'StackRefusal';
  constructor(
    readonly component: string,
    readonly reason: string,
  ) {
    super(`${component}: ${reason}`);
  }
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
