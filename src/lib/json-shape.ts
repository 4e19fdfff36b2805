// Checks of a parsed JSON value that JSON.parse does not make: how deep it nests, and whether any key or string holds
// U+0000 or a lone surrogate (`"\ud800"` is valid JSON but not Unicode text: Postgres text and jsonb refuse both).
// Iterative, so a hostile depth cannot overflow the stack here.

export type JsonShapeProblem = { kind: 'too_deep'; maxDepth: number } | { kind: 'nul' | 'lone_surrogate'; path: string };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function textProblem(s: string): 'nul' | 'lone_surrogate' | undefined {
  if (s.includes('\u0000')) return 'nul';
  return LONE_SURROGATE.test(s) ? 'lone_surrogate' : undefined;
}

const printable = (path: string) => path.replace(/\u0000/g, '\\u0000').replace(new RegExp(LONE_SURROGATE.source, 'g'), '\uFFFD');

export function inspectJson(value: unknown, opts: { maxDepth: number }): JsonShapeProblem | undefined {
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      const kind = textProblem(item.value);
      if (kind) return { kind, path: printable(item.path) || '(root)' };
      continue;
    }
    if (item.value === null || typeof item.value !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > opts.maxDepth) return { kind: 'too_deep', maxDepth: opts.maxDepth };
    const entries = Array.isArray(item.value) ? item.value.map((v, i) => [String(i), v] as const) : Object.entries(item.value);
    for (const [key, child] of entries) {
      const path = item.path ? `${item.path}.${key}` : key;
      const kind = textProblem(key);
      if (kind) return { kind, path: printable(path) };
      stack.push({ value: child, depth, path });
    }
  }
  return undefined;
}
