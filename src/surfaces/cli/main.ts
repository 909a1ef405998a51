import { readFileSync } from 'node:fs';

// `tokentally statusline` runs on every Claude Code message and must answer in a few tens of ms, so it is
// answered before commander and the report stack load. ESM hoists static imports: import everything else
// below with `await import(...)` -- a static import in this file is paid by every statusline call.
if (process.argv[2] === 'statusline' && !process.argv.includes('--help') && !process.argv.includes('-h')) {
  const { runStatusline } = await import('../statusline/run.js');
  process.exitCode = await runStatusline(process.argv.slice(3));
  // Flush stdout before exiting (piped output is asynchronous).
  if (process.stdout.writableLength > 0) await new Promise(() => process.stdout.once('drain', () => process.exit()));
  process.exit();
}

const { Command, CommanderError } = await import('commander');
const { DateArgError, TimeZoneError } = await import('../../core/time.js');
const { StoreError } = await import('../../store/store.js');
const { UsageError, UserFacingError } = await import('./errors.js');
const { registerPrices } = await import('./commands/prices.js');
const { registerReports } = await import('./commands/report.js');
const { registerSync } = await import('./commands/sync.js');
const { registerEstimate } = await import('./commands/estimate.js');
const { registerForecast } = await import('./commands/forecast.js');
const { registerBlocks } = await import('./commands/blocks.js');
const { registerLive } = await import('./commands/live.js');
const { registerStatusline } = await import('./commands/statusline.js');
const { registerProxy } = await import('./commands/proxy.js');
const { registerRequests } = await import('./commands/requests.js');
const { registerInit } = await import('./commands/init.js');
const { registerInsights } = await import('./commands/insights.js');
const { registerWhatIf } = await import('./commands/whatif.js');
const { registerTools } = await import('./commands/tools.js');

const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram() {
  const program = new Command('tokentally')
    .description('See, explain and control what Claude Code costs. Data: TOKENTALLY_HOME (default ~/.tokentally).')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerReports(program);
  registerSync(program);
  registerPrices(program);
  registerEstimate(program);
  registerForecast(program);
  registerBlocks(program);
  registerLive(program);
  registerStatusline(program);
  registerProxy(program);
  registerRequests(program);
  registerInit(program);
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
