import { z } from 'zod';
import { PROJECT_ROLES } from '../core/roles.ts';
import { ACTS_AS_PROVIDERS, TASK_STATUSES } from '../core/task-model.ts';

// What the API answers with, for the OpenAPI document only: responses are built by the services, these schemas
// describe them. They mirror the domain types (Project, McpServer, TaskView, ...) field for field.

const timestamp = z.iso.datetime({ offset: true });

export const projectSchema = z
  .object({ id: z.uuid(), name: z.string(), description: z.string().nullable(), role: z.enum(PROJECT_ROLES), createdAt: timestamp, updatedAt: timestamp })
  .meta({ id: 'Project' });

export const memberSchema = z.object({ login: z.string(), role: z.enum(PROJECT_ROLES) }).meta({ id: 'Member' });

export const mcpServerSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string().nullable(),
    oracleUrl: z.string().nullable(),
    transport: z.enum(['auto', 'streamable-http', 'sse']),
    healthPath: z.string().nullable(),
    canRunOnUserSpace: z.boolean(),
    fallbackToOracle: z.boolean(),
    location: z.string().nullable(),
    cost: z.number(),
    maxConcurrency: z.number().int().nullable(),
    enabled: z.boolean(),
    visibility: z.enum(['private', 'public']),
    actsAs: z.enum(ACTS_AS_PROVIDERS).nullable().describe("the provider whose token, from the submitting user's sign-in, goes with each call"),
    ownerId: z.uuid().nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    tools: z.array(z.object({ name: z.string(), description: z.string().nullable(), inputSchema: z.record(z.string(), z.unknown()), heavy: z.boolean(), capabilities: z.array(z.string()), timeoutMs: z.number().int().nullable() })).optional(),
  })
  .meta({ id: 'McpServer' });

export const serverHealthSchema = z.object({ server: z.string() }).catchall(z.unknown()).meta({ id: 'ServerHealth' });

export const spaceBindingSchema = z
  .object({
    projectId: z.uuid(),
    serverId: z.uuid(),
    serverName: z.string(),
    spaceId: z.string().nullable(),
    url: z.string(),
    hasToken: z.boolean(),
    toolMap: z.record(z.string(), z.string()).nullable(),
    missingTools: z.array(z.string()).nullable(),
    updatedAt: timestamp,
  })
  .meta({ id: 'SpaceBinding' });

const attemptSchema = z.object({
  kind: z.enum(['space', 'oracle']),
  server: z.string(),
  outcome: z.enum(['unhealthy', 'failed', 'succeeded', 'consent_denied', 'consent_expired', 'canceled']),
  tries: z.number().int().optional(),
  reason: z.string().optional(),
  at: timestamp,
});

export const taskSchema = z
  .object({
    id: z.uuid(),
    projectId: z.uuid(),
    tool: z.string(),
    status: z.enum(TASK_STATUSES),
    heavy: z.boolean(),
    consentToOracle: z.boolean(),
    target: z.record(z.string(), z.unknown()).optional(),
    attempts: z.array(attemptSchema),
    error: z.record(z.string(), z.unknown()).optional(),
    result: z.unknown().optional().describe('inline results as JSON; large ones as a pointer { type: "pointer", location, ... }'),
    retryOf: z.uuid().optional(),
    createdAt: timestamp,
    updatedAt: timestamp,
    finishedAt: timestamp.optional(),
  })
  .meta({ id: 'Task' });

export const taskPageSchema = z.object({ items: z.array(taskSchema), nextCursor: z.string().optional() }).meta({ id: 'TaskPage' });
export const retryManyResultSchema = z.object({ count: z.number().int(), ids: z.array(z.uuid()) }).meta({ id: 'RetryManyResult' });

/** RFC 9457 problem details, as src/api/problem.ts writes them. */
export const problemSchema = z
  .object({
    type: z.string().describe('urn:orchestrator:problem:<code>'),
    title: z.string(),
    status: z.number().int(),
    code: z.string().describe('stable, machine-readable; clients switch on it'),
    detail: z.string().optional(),
    instance: z.string(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('each failed check, for ValidationFailed'),
  })
  .catchall(z.unknown())
  .meta({ id: 'Problem' });

export const itemsOf = (item: z.ZodType) => z.object({ items: z.array(item) });
