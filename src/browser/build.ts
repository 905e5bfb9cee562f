/**
 * Builds the browser files into dist/static: client.js (src/browser/entry.ts
 * and the client core it imports, one ES module, Node's Buffer replaced by
 * src/browser/buffer-shim.ts) and status.html (copied). Run after tsc:
 *
 *     node dist/src/browser/build.js
 *
 * esbuild is a dev dependency: this runs at build time only, never in the gateway.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, from src/browser or dist/src/browser. */
function projectRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..';
  return path.resolve(here, up);
}

export async function buildBrowser(root = projectRoot()): Promise<{ clientJs: string; statusHtml: string }> {
  const { build } = await import('esbuild');
  const outDir = path.join(root, 'dist', 'static');
  mkdirSync(outDir, { recursive: true });
  const shim = path.join(root, 'src', 'browser', 'buffer-shim.ts');
  const clientJs = path.join(outDir, 'client.js');
  const result = await build({
    entryPoints: [path.join(root, 'src', 'browser', 'entry.ts')],
    outfile: clientJs,
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    inject: [shim],
    alias: { 'node:buffer': shim },
    sourcemap: true,
    minify: false,
    logLevel: 'warning',
    legalComments: 'none',
  });
  for (const file of result.outputFiles) writeAtomically(file.path, file.contents);
  const statusHtml = path.join(outDir, 'status.html');
  writeAtomically(statusHtml, readFileSync(path.join(root, 'src', 'browser', 'status.html')));
  return { clientJs, statusHtml };
}

/** Write then rename: a gateway serving the file (or a parallel build) never sees half of it. */
function writeAtomically(file: string, contents: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildBrowser().then(
    ({ clientJs }) => process.stdout.write(`built ${path.relative(process.cwd(), clientJs)} and status.html\n`),
    (err: unknown) => {
      process.stderr.write(`browser build failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
