import { STATUS_CODES } from 'node:http';
import { z } from 'zod';
import type { ApiOperation } from './api-operation.ts';
import { problemSchema } from './response-schemas.ts';
import { authOperations } from './routes/auth.ts';
import { apiKeyOperations } from './routes/api-keys.ts';
import { auditOperations } from './routes/audit.ts';
import { agentOperations } from './routes/agents.ts';
import { agentRunOperations } from './routes/agent-runs.ts';
import { agentRunEventOperations } from './routes/agent-run-events.ts';
import { mcpEndpointOperations } from './mcp/mcp-routes.ts';
import { docsOperations } from './routes/docs.ts';
import { healthOperations } from './routes/health.ts';
import { knowledgeGraphOperations } from './routes/knowledge-graph.ts';
import { knowledgeGraphMcpOperations } from './routes/knowledge-graph-mcp.ts';
import { mcpOperations } from './routes/mcps.ts';
import { projectOperations } from './routes/projects.ts';
import { spaceOperations } from './routes/spaces.ts';
import { taskEventOperations } from './routes/task-events.ts';
import { taskOperations } from './routes/tasks.ts';

/** Every operation the API serves; a router added to the app adds its operations here (the contract test checks). */
export const API_OPERATIONS: ApiOperation[] = [
  ...projectOperations,
  ...spaceOperations,
  ...mcpOperations,
  ...taskOperations,
  ...taskEventOperations,
  ...agentOperations,
  ...agentRunOperations,
  ...agentRunEventOperations,
  ...knowledgeGraphOperations,
  ...knowledgeGraphMcpOperations,
  ...healthOperations,
  ...docsOperations,
  ...authOperations,
  ...apiKeyOperations,
  ...auditOperations,
  ...mcpEndpointOperations,
];

type JsonSchema = Record<string, unknown>;

/** Problems any bearer route may answer: no or a bad token, over the caller's request rate. */
const BEARER_PROBLEMS = [401, 429];
/** Problems of reading a JSON body (json-body.ts) and of validating it. */
const BODY_PROBLEMS = [400, 413, 415];

/**
 * Converts zod schemas to JSON Schema 2020-12 (OpenAPI 3.1's dialect). Schemas with a `.meta({ id })` go to
 * components.schemas once and are referenced from everywhere else.
 */
function schemaConverter() {
  const components: Record<string, JsonSchema> = {};
  const toComponentRefs = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(toComponentRefs);
    if (node === null || typeof node !== 'object') return node;
    const out: JsonSchema = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out[key] = value.replace(/^#\/\$defs\//, '#/components/schemas/');
      else out[key] = toComponentRefs(value);
    }
    return out;
  };
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    // Requests are described as a client writes them (defaults make a field optional), responses as the API writes them.
    const { $schema: _dialect, $defs, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
    for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) components[id] = toComponentRefs(def) as JsonSchema;
    return toComponentRefs(rest) as JsonSchema;
  };
  return { convert, components };
}

function parameters(op: ApiOperation, convert: ReturnType<typeof schemaConverter>['convert']) {
  const sources = [['path', op.params], ['query', op.query], ['header', op.headers]] as const;
  return sources.flatMap(([where, schema]) => {
    if (!schema) return [];
    return Object.entries(schema.shape).map(([name, field]) => {
      const { description, ...fieldSchema } = convert(field as z.ZodType, 'input');
      return {
        name,
        in: where,
        required: where === 'path' || !(field as z.ZodType).safeParse(undefined).success,
        ...(typeof description === 'string' ? { description } : {}),
        schema: fieldSchema,
      };
    });
  });
}

function problemStatuses(op: ApiOperation): number[] {
  const all = new Set([...(op.auth === 'bearer' ? BEARER_PROBLEMS : []), ...(op.body || op.query ? BODY_PROBLEMS : []), ...(op.problems ?? [])]);
  return [...all].sort((a, b) => a - b);
}

function operationObject(op: ApiOperation, convert: ReturnType<typeof schemaConverter>['convert']) {
  const responses: Record<string, unknown> = {};
  for (const [status, res] of Object.entries(op.responses)) {
    responses[status] = {
      description: res.description,
      ...(res.schema || res.contentType ? { content: { [res.contentType ?? 'application/json']: res.schema ? { schema: convert(res.schema, 'output') } : {} } } : {}),
    };
  }
  for (const status of problemStatuses(op)) {
    responses[String(status)] = { $ref: `#/components/responses/Problem${status}` };
  }
  const params = parameters(op, convert);
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    tags: op.tags,
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(op.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: convert(op.body, 'input'), ...(op.example !== undefined ? { example: op.example } : {}) } } } }
      : {}),
    responses,
    security: op.auth === 'bearer' ? [{ bearer: [] }] : [],
  };
}

/** An OpenAPI 3.1 document of the operations, built from the same zod schemas that validate requests. */
export function buildOpenApiDocument(operations: ApiOperation[], info: { version: string }) {
  const { convert, components } = schemaConverter();
  const paths: Record<string, Record<string, unknown>> = {};
  const statuses = new Set<number>();
  for (const op of operations) {
    (paths[op.path] ??= {})[op.method] = operationObject(op, convert);
    for (const status of problemStatuses(op)) statuses.add(status);
  }
  // Problem carries a meta id: converting it files it under components.schemas.Problem.
  convert(problemSchema, 'output');
  const problemResponses = Object.fromEntries(
    [...statuses].sort((a, b) => a - b).map((status) => [
      `Problem${status}`,
      { description: `${STATUS_CODES[status] ?? 'Error'}: a problem (RFC 9457) whose \`code\` says which`, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
    ]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'orchestrator',
      version: info.version,
      description: 'Runs MCP tool calls as durable tasks. Errors are application/problem+json with a stable `code`.',
    },
    tags: [...new Set(operations.flatMap((op) => op.tags))].map((name) => ({ name })),
    paths,
    components: {
      schemas: components,
      responses: problemResponses,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a token from `orchestrator token --login NAME` or your identity provider' } },
    },
  };
}

export type OpenApiDocument = ReturnType<typeof buildOpenApiDocument>;
