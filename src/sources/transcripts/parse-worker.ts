/** Worker thread: parses transcript files handed to it and posts the chunks back; it never touches the store. */
import { parentPort } from 'node:worker_threads';
import type { FileCheckpoint } from '../../store/store.js';
import type { FoundFile } from './discover.js';
import { readTranscriptFile } from './reader.js';

export interface ParseJob {
  file: FoundFile;
  checkpoint: FileCheckpoint | undefined;
  maxSkipped: number;
}

export type ParseMessage =
  | { type: 'chunk'; chunk: import('./reader.js').FileChunk }
  | { type: 'done'; path: string }
  | { type: 'error'; path: string; code: string | undefined; message: string };

parentPort?.on('message', (job: ParseJob) => {
  try {
    for (const chunk of readTranscriptFile(job.file, job.checkpoint, job.maxSkipped)) {
      parentPort!.postMessage({ type: 'chunk', chunk } satisfies ParseMessage);
    }
    parentPort!.postMessage({ type: 'done', path: job.file.path } satisfies ParseMessage);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    parentPort!.postMessage({ type: 'error', path: job.file.path, code: e.code, message: e.message ?? String(err) } satisfies ParseMessage);
  }
});
