import { createRequire } from 'node:module';
import type { SyncProgress } from '../../sources/transcripts/sync.js';

const require = createRequire(import.meta.url);

/**
 * A sync progress bar on stderr, shown only when stderr is a terminal, output is not machine-readable,
 * and the sync has already taken about a second (fast warm syncs stay silent).
 */
export function syncProgressReporter(enabled: boolean): { onProgress?: (p: SyncProgress) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { stop: () => {} };
  const started = Date.now();
  let bar: { update: (v: number, payload?: object) => void; setTotal: (t: number) => void; stop: () => void } | null = null;
  return {
    onProgress: (p) => {
      if (!bar) {
        if (Date.now() - started < 1000 || p.filesDone >= p.filesTotal) return;
        // Loaded lazily: most runs never show a bar.
        const cliProgress = require('cli-progress') as typeof import('cli-progress');
        const b = new cliProgress.SingleBar({
          stream: process.stderr,
          format: 'syncing transcripts [{bar}] {percentage}% | {mb}/{totalMb} MB | {files}/{totalFiles} files',
          hideCursor: true, clearOnComplete: true,
        }, cliProgress.Presets.shades_classic);
        b.start(p.bytesTotal || 1, p.bytesDone, payload(p));
        bar = b;
      }
      bar.setTotal(p.bytesTotal || 1);
      bar.update(p.bytesDone, payload(p));
    },
    stop: () => bar?.stop(),
  };
}

function payload(p: SyncProgress) {
  return { mb: (p.bytesDone / 1048576).toFixed(0), totalMb: (p.bytesTotal / 1048576).toFixed(0), files: p.filesDone, totalFiles: p.filesTotal };
}
