import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { DateArgError, TimeZoneError } from '../../core/time.js';
import { StoreError } from '../../store/store.js';
import { UsageError, UserFacingError } from './errors.js';
import { registerPrices } from './commands/prices.js';
import { registerReports } from './commands/report.js';
import { registerSync } from './commands/sync.js';
import { registerInsights } from './commands/insights.js';
import { registerWhatIf } from './commands/whatif.js';
import { registerTools } from './commands/tools.js';

const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('tokentally')
    .description('See, explain and control what Claude Code costs. Data: TOKENTALLY_HOME (default ~/.tokentally).')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerReports(program);
  registerSync(program);
  registerPrices(program);
  registerInsights(program);
  registerWhatIf(program);
  registerTools(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; every parse error is bad usage: exit 2.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    if (err instanceof UsageError || err instanceof DateArgError || err instanceof TimeZoneError) {
      process.stderr.write(`tokentally: ${err.message}\n(run with --help for usage)\n`);
      return 2;
    }
    if (err instanceof UserFacingError || err instanceof StoreError) {
      process.stderr.write(`tokentally: ${err.message}\n${err.hint ? `  ${err.hint}\n` : ''}`);
      return 1;
    }
    process.stderr.write(`tokentally: unexpected error: ${(err as Error)?.message ?? String(err)}\n`
      + '  please report it; set TOKENTALLY_DEBUG=1 for details\n');
    if (process.env.TOKENTALLY_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Flush stdout before exiting (piped output is asynchronous).
if (process.stdout.writableLength > 0) process.stdout.once('drain', () => process.exit(code));
else process.exit(code);
