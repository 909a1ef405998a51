/**
 * The commander program behind every command except the fast paths in main.ts (statusline, hook). Reports also
 * run from the one-file bundle dist/cli.cjs (scripts/build-statusline.mjs, bin/tokentally.js), which is why this
 * module has no top-level await: main.ts and the bundle both call main().
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { DateArgError, TimeZoneError } from '../../core/time.js';
import { StoreError } from '../../store/store.js';
import { UsageError, UserFacingError } from './errors.js';

type Program = InstanceType<typeof Command>;
type Registrar = (program: Program) => void;

/** Each command's module, loaded only when that command runs (or for help): startup is most of a warm run. */
const COMMANDS: Record<string, () => Promise<Registrar>> = {
  report: async () => (await import('./commands/report.js')).registerReports,
  sync: async () => (await import('./commands/sync.js')).registerSync,
  prices: async () => (await import('./commands/prices.js')).registerPrices,
  estimate: async () => (await import('./commands/estimate.js')).registerEstimate,
  forecast: async () => (await import('./commands/forecast.js')).registerForecast,
  blocks: async () => (await import('./commands/blocks.js')).registerBlocks,
  live: async () => (await import('./commands/live.js')).registerLive,
  statusline: async () => (await import('./commands/statusline.js')).registerStatusline,
  proxy: async () => (await import('./commands/proxy.js')).registerProxy,
  requests: async () => (await import('./commands/requests.js')).registerRequests,
  init: async () => (await import('./commands/init.js')).registerInit,
  insights: async () => (await import('./commands/insights.js')).registerInsights,
  whatif: async () => (await import('./commands/whatif.js')).registerWhatIf,
  tools: async () => (await import('./commands/tools.js')).registerTools,
  budget: async () => (await import('./commands/budget.js')).registerBudget,
  alerts: async () => (await import('./commands/alerts.js')).registerAlerts,
  route: async () => (await import('./commands/route.js')).registerRoute,
  hook: async () => (await import('./commands/hook.js')).registerHook,
};
/** Commands registered by another command's module. */
const MODULE_OF: Record<string, string> = {
  daily: 'report', weekly: 'report', monthly: 'report', session: 'report', project: 'report', model: 'report',
};

const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The modules to load for these arguments: one command's, or all of them for help and unknown commands. */
function modulesFor(argv: string[]): string[] {
  const first = argv[0];
  if (first === undefined || (first.startsWith('-') && !['-h', '--help', '-V', '--version'].includes(first))) return ['report'];
  const name = MODULE_OF[first] ?? first;
  return name in COMMANDS && !argv.includes('--help') && !argv.includes('-h') ? [name] : Object.keys(COMMANDS);
}

export async function buildProgram(argv: string[] = []): Promise<Program> {
  const program = new Command('tokentally')
    .description('See, explain and control what Claude Code costs. Data: TOKENTALLY_HOME (default ~/.tokentally).')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const name of modulesFor(argv)) (await COMMANDS[name]())(program);
  for (const c of program.commands) c.exitOverride().showHelpAfterError('(run with --help for usage)');
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
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
