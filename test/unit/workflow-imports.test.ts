import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Workflow code runs in Temporal's deterministic sandbox and is replayed: it may import only the workflow SDK,
// its own files, and *types* (erased at build) from activities/, src/core (where the domain model lives) and
// @temporalio/common.
const WORKFLOWS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../workflows');

function importsOf(source: string): Array<{ spec: string; typeOnly: boolean }> {
  const out: Array<{ spec: string; typeOnly: boolean }> = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) out.push({ spec: m[3]!, typeOnly: Boolean(m[2]) });
  const dynamic = /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]/g;
  for (const m of source.matchAll(dynamic)) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

export function forbiddenWorkflowImports(file: string, source: string): string[] {
  return importsOf(source)
    .filter(({ spec, typeOnly }) => {
      if (spec === '@temporalio/workflow') return false;
      if (spec.startsWith('./')) return false;
      if (typeOnly && (spec.startsWith('../activities/') || spec.startsWith('../src/core/') || spec === '@temporalio/common')) return false;
      return true;
    })
    .map(({ spec, typeOnly }) => `${file}: ${typeOnly ? 'import type' : 'import'} '${spec}'`);
}

describe('workflows/ imports', function () {
  it('imports nothing but @temporalio/workflow, its own files and types', function () {
    const files = readdirSync(WORKFLOWS).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 3);
    const bad = files.flatMap((f) => forbiddenWorkflowImports(f, readFileSync(path.join(WORKFLOWS, f), 'utf8')));
    assert.deepEqual(bad, []);
  });

  it('catches a value import of activity code or a Node module', function () {
    const src =
      "import { createActivities } from '../activities/index.ts';\nimport fs from 'node:fs';\nimport { X } from '../src/core/x.ts';\nimport type { Y } from '../src/core/y.ts';\nimport type { Z } from '../src/api/z.ts';\n";
    assert.deepEqual(forbiddenWorkflowImports('t.ts', src), [
      "t.ts: import '../activities/index.ts'",
      "t.ts: import 'node:fs'",
      "t.ts: import '../src/core/x.ts'",
      "t.ts: import type '../src/api/z.ts'",
    ]);
  });
});
