import { z } from 'zod';
import { NotFoundError } from '../../core/errors.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { ToolProvider } from './tool-provider.ts';

export const CONSENT_TOOL = 'consent';

const consentArgs = z.strictObject({ taskId: z.uuid(), grant: z.boolean() });

/**
 * Answers a task waiting for consent (MCP status input_required): grant lets work meant for the project's Space run
 * on platform infrastructure, deny ends the task. The same decision as POST /v1/tasks/:id/consent.
 */
export function consentTool(deps: { tasks: Pick<TaskService, 'decideConsent' | 'require'> }): ToolProvider {
  return {
    name: 'consent',
    async tools() {
      return [
        {
          definition: {
            name: CONSENT_TOOL,
            title: 'Grant or deny consent for a task',
            description:
              'A task in status input_required waits for consent to run on platform infrastructure instead of the project\'s own Space. ' +
              'Call with its taskId and grant: true to let it run there, or grant: false to end it.',
            inputSchema: {
              type: 'object',
              properties: { taskId: { type: 'string', format: 'uuid', description: 'the task (MCP task id) awaiting consent' }, grant: { type: 'boolean' } },
              required: ['taskId', 'grant'],
              additionalProperties: false,
            },
            execution: { taskSupport: 'forbidden' },
          },
          async call(args, caller) {
            const { taskId, grant } = consentArgs.parse(args);
            // Only tasks of the project this endpoint serves: another project's task is as unknown here as anywhere.
            const task = await deps.tasks.require(caller.userId, taskId);
            if (task.projectId !== caller.projectId) throw new NotFoundError('Task', taskId);
            const state = await deps.tasks.decideConsent(caller.userId, taskId, { grant, by: caller.login });
            return {
              kind: 'immediate',
              result: {
                content: [{ type: 'text', text: grant ? `Consent granted: task ${taskId} continues (status ${state.status}).` : `Consent denied: task ${taskId} ends.` }],
                structuredContent: { taskId, status: state.status, consent: state.consent },
              },
            };
          },
        },
      ];
    },
  };
}
