import { activityInfo } from '@temporalio/activity';

export async function ping(greeting: string): Promise<string> {
  return `${greeting} from ${activityInfo().taskQueue}`;
}
