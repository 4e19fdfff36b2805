import type { z } from 'zod';

// Each route module describes its routes next to the handlers, with the same zod schemas that validate requests.
// The OpenAPI document is generated from these descriptions, and a contract test checks them against the router.

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ApiResponse {
  description: string;
  /** The body's schema; absent for an empty body (204) or one that is not JSON. */
  schema?: z.ZodType;
  /** Defaults to application/json; e.g. text/event-stream or application/octet-stream. */
  contentType?: string;
}

export interface ApiOperation {
  method: HttpMethod;
  /** The path as OpenAPI writes it, e.g. `/v1/projects/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** `bearer` for routes behind authentication, `none` for public ones. */
  auth: 'bearer' | 'none';
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** Request headers the operation reads (Idempotency-Key, Last-Event-ID); names as sent. */
  headers?: z.ZodObject;
  body?: z.ZodType;
  /** An example request body; the contract test checks it against `body`. */
  example?: unknown;
  /** Successful answers, by status. */
  responses: Record<number, ApiResponse>;
  /** Statuses this operation may answer with an application/problem+json body. */
  problems?: number[];
}
