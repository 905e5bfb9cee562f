// The code blocks of README.md and docs/*.md, so tests can check and run
// them as written: docs cannot drift from the code.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './project-root.js';

export interface DocExample {
  /** `docs/client.md:10`: the file and the line of the opening fence. */
  where: string;
  lang: string;
  code: string;
}

export function docExamples(lang: string): DocExample[] {
  const root = projectRoot();
  const files = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const out: DocExample[] = [];
  for (const file of files) {
    const lines = readFileSync(path.join(root, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(\w+)\s*$/.exec(lines[i]!);
      if (open === null) continue;
      const end = lines.indexOf('```', i + 1);
      if (end < 0) throw new Error(`${file}:${i + 1}: a code block is never closed`);
      if (open[1] === lang) out.push({ where: `${file}:${i + 1}`, lang, code: lines.slice(i + 1, end).join('\n') });
      i = end;
    }
  }
  return out;
}
