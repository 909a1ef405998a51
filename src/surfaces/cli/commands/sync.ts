import type { Command } from 'commander';
import { syncTranscripts, type SyncReport } from '../../../sources/transcripts/sync.js';
import type { Store } from '../../../store/store.js';
import { loadPriceBook, openStore } from '../context.js';
import { formatInt, printable, wrap } from '../format.js';
import { syncProgressReporter } from '../progress.js';

/** Import new transcript lines; shared by every report that syncs first. */
export async function runSync(store: Store, quiet: boolean, options: { facts?: boolean } = {}): Promise<SyncReport> {
  const progress = syncProgressReporter(!quiet);
  try {
    const report = await syncTranscripts(store, { onProgress: progress.onProgress });
    // Session audits also need tool calls, results and compactions: read them in their own pass.
    if (options.facts) {
      const facts = await syncTranscripts(store, { onProgress: progress.onProgress, pass: 'facts' });
      report.factsPass = { filesRead: facts.files.read, bytesRead: facts.bytesRead, durationMs: facts.durationMs };
      report.durationMs += facts.durationMs;
    }
    return report;
  } finally {
    progress.stop();
  }
}

export function describeSync(r: SyncReport, verbose: boolean): string {
  const lines: string[] = [];
  if (r.roots.length === 0) {
    lines.push(`no Claude Code transcript folder found (looked in ${r.missingRoots.join(', ')}); reporting what is stored`);
  }
  lines.push(`synced ${formatInt(r.files.read)} of ${formatInt(r.files.seen)} files (${(r.bytesRead / 1048576).toFixed(1)} MB, `
    + `${formatInt(r.lines)} lines): ${formatInt(r.newRequests)} new requests, ${formatInt(r.mergedCopies)} duplicate copies merged`
    + ` in ${r.durationMs} ms`);
  const skippedTotal = Object.values(r.skipped).reduce((a, b) => a + b, 0);
  if (skippedTotal > 0) {
    const parts = Object.entries(r.skipped).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k.replace(/_/g, ' ')}`);
    lines.push(`skipped ${skippedTotal} malformed lines (${parts.join(', ')})${verbose ? ':' : '; --verbose lists them'}`);
    if (verbose) for (const s of r.skippedLines) lines.push(`  ${s.file}:${s.line}: ${s.reason.replace(/_/g, ' ')}`);
  }
  for (const e of r.errors) lines.push(`could not read ${e.file}: ${e.message} (other files were imported)`);
  // file:line entries stay whole (they are meant to be copied); prose wraps to the terminal.
  return lines.map((l) => (l.startsWith('  ') ? printable(l) : wrap(l))).join('\n');
}

export function registerSync(program: Command): void {
  program.command('sync')
    .description('import new lines from Claude Code transcripts into the store (incremental)')
    .option('--json', 'print what was read as JSON')
    .option('-v, --verbose', 'list every skipped line as file:line')
    .action(async (opts: { json?: boolean; verbose?: boolean }) => {
      const store = openStore(loadPriceBook());
      try {
        // An explicit sync imports everything: requests, and the tool facts session audits use.
        const report = await runSync(store, Boolean(opts.json), { facts: true });
        if (opts.json) {
          const { skippedLines, ...rest } = report;
          process.stdout.write(JSON.stringify(opts.verbose ? report : { ...rest, skippedLines: skippedLines.slice(0, 20) }, null, 2) + '\n');
        } else {
          process.stdout.write(describeSync(report, Boolean(opts.verbose)) + '\n');
        }
      } finally {
        await store.close();
      }
    });
}
