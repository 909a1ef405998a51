/**
 * Worker thread: claims files from a shared counter, parses them and posts the chunks back; it never
 * touches the store. Workers never wait for the main thread to hand out work (they would idle while it
 * commits), but each stops when too many of its chunks are still unconsumed, bounding memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { FileCheckpoint, SyncPass } from '../../store/store.js';
import type { FoundFile } from './discover.js';
import { readTranscriptFile, type FileChunk } from './reader.js';

export interface ParseJob {
  file: FoundFile;
  checkpoint: FileCheckpoint | undefined;
}

export interface ParseWorkerData {
  jobs: ParseJob[];
  maxSkipped: number;
  /** Int32Array over a SharedArrayBuffer: [0] = next job index, [1 + worker] = KiB of that worker's unconsumed chunks. */
  shared: SharedArrayBuffer;
  index: number;
  maxInFlight: number;
  pass: SyncPass;
}

/** What a chunk weighs against a worker's in-flight allowance: the KiB of transcript it came from. */
export function chunkWeight(chunk: FileChunk): number {
  return Math.max(1, Math.ceil(chunk.bytesRead / 1024));
}

export type ParseMessage =
  | { type: 'chunk'; chunk: FileChunk }
  | { type: 'error'; path: string; code: string | undefined; message: string }
  | { type: 'finished' };

if (parentPort) {
  const { jobs, maxSkipped, shared, index, maxInFlight, pass } = workerData as ParseWorkerData;
  const counters = new Int32Array(shared);
  const slot = 1 + index;
  for (let j = Atomics.add(counters, 0, 1); j < jobs.length; j = Atomics.add(counters, 0, 1)) {
    const job = jobs[j];
    try {
      for (const chunk of readTranscriptFile(job.file, job.checkpoint, maxSkipped, pass)) {
        for (let pending = Atomics.load(counters, slot); pending >= maxInFlight; pending = Atomics.load(counters, slot)) {
          Atomics.wait(counters, slot, pending, 1000);
        }
        Atomics.add(counters, slot, chunkWeight(chunk));
        parentPort.postMessage({ type: 'chunk', chunk } satisfies ParseMessage);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      parentPort.postMessage({ type: 'error', path: job.file.path, code: e.code, message: e.message ?? String(err) } satisfies ParseMessage);
    }
  }
  parentPort.postMessage({ type: 'finished' } satisfies ParseMessage);
}
