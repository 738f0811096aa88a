import type { Component } from '../component.ts';
import { consoleComponent } from './console.ts';
import { gateway } from './gateway.ts';
import { postgres } from './postgres.ts';
import { s3 } from './s3.ts';
import { temporal } from './temporal.ts';
import { triton } from './triton.ts';
import { workers } from './workers.ts';

/**
 * Start order: the gateway needs Postgres, S3 and Triton; workers need the others; the console reads
 * what they all record. `down` stops them in reverse.
 */
export const components: Component[] = [temporal, postgres, s3, triton, gateway, workers, consoleComponent];
