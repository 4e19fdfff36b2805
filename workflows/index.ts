export { taskWorkflow } from './task.ts';
export { agentRunWorkflow } from './agent-run.ts';
