// `tokentally statusline` runs on every Claude Code message and must answer in a few tens of ms, so it is
// answered before commander and the report stack load. ESM hoists static imports: import everything else
// below with `await import(...)` -- a static import in this file is paid by every statusline call.
if (process.argv[2] === 'statusline' && !process.argv.includes('--help') && !process.argv.includes('-h')) {
  const { runStatusline } = await import('../statusline/run.js');
  // It writes synchronously (and never touches process.stdout, whose pipe stream costs a module load).
  process.exit(await runStatusline(process.argv.slice(3)));
}

// `tokentally hook` runs before every prompt (UserPromptSubmit): same fast path, no commander.
if (process.argv[2] === 'hook') {
  const { parseHookArgs, hookMain } = await import('./commands/hook.js');
  const flags = parseHookArgs(process.argv.slice(3));
  if (flags) {
    process.exitCode = await hookMain(flags);
    if (process.stdout.writableLength > 0) await new Promise(() => process.stdout.once('drain', () => process.exit()));
    process.exit();
  }
}

const { main } = await import('./program.js');
const code = await main(process.argv.slice(2));
// Flush stdout before exiting (piped output is asynchronous).
if (process.stdout.writableLength > 0) process.stdout.once('drain', () => process.exit(code));
else process.exit(code);
