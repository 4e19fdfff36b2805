import { proxyActivities } from '@temporalio/workflow';

// The bare Temporal baseline: one workflow, one no-op activity, nothing else.

export interface BaselineActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<BaselineActivities>({ startToCloseTimeout: '30s' });

export async function baselineWorkflow(): Promise<void> {
  await noop();
}
