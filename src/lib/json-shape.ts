// Checks of a parsed JSON value that JSON.parse does not make: how deep it nests and whether any key or string holds
// U+0000 (which Postgres text and jsonb cannot store). Iterative, so a hostile depth cannot overflow the stack here.

export type JsonShapeProblem = { kind: 'too_deep'; maxDepth: number } | { kind: 'nul'; path: string };

export function inspectJson(value: unknown, opts: { maxDepth: number }): JsonShapeProblem | undefined {
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      if (item.value.includes('\u0000')) return { kind: 'nul', path: item.path || '(root)' };
      continue;
    }
    if (item.value === null || typeof item.value !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > opts.maxDepth) return { kind: 'too_deep', maxDepth: opts.maxDepth };
    const entries = Array.isArray(item.value) ? item.value.map((v, i) => [String(i), v] as const) : Object.entries(item.value);
    for (const [key, child] of entries) {
      const path = item.path ? `${item.path}.${key}` : key;
      if (key.includes('\u0000')) return { kind: 'nul', path: path.replace(/\u0000/g, '\\u0000') };
      stack.push({ value: child, depth, path });
    }
  }
  return undefined;
}
