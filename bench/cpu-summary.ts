// Top self-time functions and packages of V8 CPU profiles (`bench/run.ts --cpu-prof DIR` writes them).
//   npx tsx bench/cpu-summary.ts DIR/worker/*.cpuprofile [--top 15]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
const top = Number(values.top ?? 15);
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let total = 0;
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const frame = nodes.get(id)!.callFrame;
    const where = frame.url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '');
    const fn = `${frame.functionName || '(anonymous)'} ${where ? `${where}:${frame.lineNumber + 1}` : ''}`.trim();
    const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(where)?.[1] ?? (frame.url.includes('/src/') || frame.url.includes('/activities/') ? 'orchestrator' : where.startsWith('node:') ? 'node internals' : frame.functionName.startsWith('(') ? frame.functionName : 'other');
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + dt);
    total += dt;
  });
}
const show = (m: Map<string, number>) =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`).join('\n');
process.stdout.write(`total sampled ${(total / 1000).toFixed(0)} ms\nby package:\n${show(byPackage)}\nby function (self time):\n${show(byFunction)}\n`);
