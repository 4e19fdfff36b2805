import type { AgentRef } from './agent-model.ts';

// References inside an agent's step arguments: an object with a single `$ref` key whose value is a dotted path.
//   input            the run's input         input.repo, input.files.0
//   steps.ID.output  a step's output         steps.scan.output.findings
//   item             the current forEach element (only in a forEach step)   item.path
// A number segment indexes an array. A reference replaces the whole value it stands in; there is no string splicing.

export type RefRoot = { kind: 'input' } | { kind: 'step'; step: string } | { kind: 'item' };

export interface ParsedRef {
  root: RefRoot;
  /** The path below the root (below `output` for a step). */
  path: string[];
}

const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;

export function isRef(value: unknown): value is AgentRef {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && typeof (value as AgentRef).$ref === 'string';
}

/** The parsed reference, or a sentence saying what is wrong with it. */
export function parseRef(ref: string): ParsedRef | { error: string } {
  const parts = ref.split('.');
  if (parts.some((p) => !SEGMENT.test(p))) return { error: `"${ref}" is not a dotted path of names and indexes` };
  const [head, ...rest] = parts;
  if (head === 'input') return { root: { kind: 'input' }, path: rest };
  if (head === 'item') return { root: { kind: 'item' }, path: rest };
  if (head === 'steps') {
    const [step, output, ...path] = rest;
    if (!step || output !== 'output') return { error: `"${ref}" must name a step's output: steps.<id>.output[.path]` };
    return { root: { kind: 'step', step }, path };
  }
  return { error: `"${ref}" must start with input, steps or item` };
}

/** Every reference inside a value, in document order. */
export function collectRefs(value: unknown, out: string[] = []): string[] {
  if (isRef(value)) out.push(value.$ref);
  else if (Array.isArray(value)) for (const v of value) collectRefs(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) collectRefs(v, out);
  return out;
}

export class RefNotFoundError extends Error {
  constructor(readonly ref: string) {
    super(`the reference "${ref}" names nothing in this run`);
  }
}

/** Follows a path into a value; undefined when a segment is missing. */
export function walk(value: unknown, path: string[]): unknown {
  let v = value;
  for (const p of path) {
    if (Array.isArray(v) && /^\d+$/.test(p)) v = v[Number(p)];
    else if (v && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, p)) v = (v as Record<string, unknown>)[p];
    else return undefined;
  }
  return v;
}

/**
 * Replaces every reference in `value`. `lookup` yields the root's value (the input, a step's output, the item);
 * a reference that names nothing fails the step rather than passing undefined to a tool.
 */
export async function resolveRefs(value: unknown, lookup: (root: RefRoot) => Promise<unknown>): Promise<unknown> {
  if (isRef(value)) {
    const parsed = parseRef(value.$ref);
    if ('error' in parsed) throw new RefNotFoundError(value.$ref);
    const found = walk(await lookup(parsed.root), parsed.path);
    if (found === undefined) throw new RefNotFoundError(value.$ref);
    return found;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) out.push(await resolveRefs(v, lookup));
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await resolveRefs(v, lookup);
    return out;
  }
  return value;
}
