import { activityInfo } from '@temporalio/activity';

export async function ping(greeting: string): Promise<string> {
  return `${greeting} from ${activityInfo().taskQueue}`;
}

/** Does nothing: the baseline benchmark measures the control plane around activities like this. */
export async function noop(): Promise<void> {}
