import type { Command } from 'commander';

/**
 * Listed here for `--help`; a plain `tokentally statusline ...` never reaches commander: main.ts dispatches it
 * to ../../statusline/run.ts before loading the CLI (it must answer in a few tens of milliseconds).
 */
export function registerStatusline(program: Command): void {
  program.command('statusline')
    .description("Claude Code's statusLine command: reads its JSON on stdin, prints one line "
      + '(session cost, today, 5-hour block, context size)')
    .option('-z, --timezone <zone>', 'IANA time zone for "today" (default: the system zone)')
    .option('--json', 'print the figures as JSON instead of the line')
    .option('--no-sync', "don't import the session's transcript first")
    .addHelpText('after', '\nIn ~/.claude/settings.json:\n  "statusLine": {"type": "command", "command": "tokentally statusline"}\n'
      + 'Any runtime error prints "tokentally: unavailable" and exits 0. The last line of each session is reused while '
      + 'nothing it depends on changed (TOKENTALLY_HOME/cache/statusline; TOKENTALLY_STATUSLINE_CACHE=0 turns that off).')
    .action(async () => {
      // Reached only when main.ts's fast path did not run (e.g. options before the command name):
      // re-read the statusline's own flags from argv so both paths parse them the same way.
      const { runStatusline } = await import('../../statusline/run.js');
      const i = process.argv.indexOf('statusline');
      process.exitCode = await runStatusline(i >= 0 ? process.argv.slice(i + 1) : []);
    });
}
