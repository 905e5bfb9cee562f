/** The package's version, read once from its package.json (shipped beside dist/ in every install). */
import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export const VERSION: string = pkg.version;
