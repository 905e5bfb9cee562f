/**
 * The `replication-gateway` command: one subcommand per file in src/cli/,
 * loaded only when asked for so `tail` does not pay for the server's imports.
 */
const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  serve: { summary: 'run the gateway (what `npm start` runs)', load: () => import('./cli/serve.js') },
  tail: { summary: 'follow streams and print each row as a JSON line', load: () => import('./cli/tail.js') },
  publish: { summary: 'read JSON rows from stdin and write them to a stream as a writer', load: () => import('./cli/publish.js') },
  version: { summary: 'print the version (also --version)', load: async () => ({ run: printVersion }) },
};

async function printVersion(): Promise<number> {
  const { VERSION } = await import('./version.js');
  process.stdout.write(`replication-gateway ${VERSION}\n`);
  return 0;
}

function usage(): string {
  const lines = ['usage: replication-gateway <command> [options]', '', 'commands:'];
  for (const [name, { summary }] of Object.entries(SUBCOMMANDS)) lines.push(`  ${name.padEnd(8)} ${summary}`);
  lines.push('', 'Run `replication-gateway <command> --help` for its options.');
  return `${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') return printVersion();
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    process.stderr.write(`replication-gateway: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  return (await sub.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`replication-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
