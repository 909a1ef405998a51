import type { RequestRecord } from '../core/types.js';
import type { Compaction, SessionFacts, ToolCall, ToolResult } from '../core/session-facts.js';
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { BudgetDefinition, SpendFilter, SpendTotal } from '../policy/budgets.js';
import type { AlertRecord } from '../policy/alerts.js';
import type { RouteDecision } from '../policy/routing.js';

/** Where the transcript importer stopped in one file, so the next sync reads only appended bytes. */
export interface FileCheckpoint {
  path: string;
  /** Inode and device: a replaced file (same path, new inode) is read again from the start. */
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Bytes consumed: always the end of a complete line. */
  offset: number;
  /** Lines consumed, so skipped lines can be reported as file:line. */
  lines: number;
  /** Hash of the file's first bytes: a file rewritten in place is detected and re-read. */
  head: string;
}

export interface RequestFilter {
  /** Inclusive lower bound, epoch ms. */
  fromTs?: number;
  /** Exclusive upper bound, epoch ms. */
  toTs?: number;
  /** Substring of the project path. */
  project?: string;
  sessionId?: string;
  /** The zone's UTC offsets over the range, needed to group by `localDay` (see LocalCalendar.offsetChanges). */
  localDayOffsets?: OffsetChange[];
}

/** From quarter hour `fromQ` on (until the next change), local time is UTC + `offsetQ` quarter hours. */
export interface OffsetChange {
  fromQ: number;
  offsetQ: number;
}

/** Transcripts are read in two passes with their own positions: requests (every report) and tool facts (audits). */
export type SyncPass = 'requests' | 'facts';

export interface FactFilter {
  sessionId?: string;
  fromTs?: number;
  toTs?: number;
}

export type GroupDim = 'quarterHour' | 'localDay' | 'model' | 'session' | 'project';

export interface UsageGroup {
  quarterHour?: number;
  /** Local calendar day as days since 1970-01-01 (with `localDay` grouping). */
  localDay?: number;
  model?: string | null;
  session?: string | null;
  project?: string | null;
  requests: number;
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  webSearches: number;
  /** Sum of known costs (USD). */
  cost: number;
  /** Tokens of requests whose model has no price. */
  unknownCostTokens: number;
  unknownCostRequests: number;
  firstTs: number;
  lastTs: number;
}

export interface UpsertResult {
  inserted: number;
  updated: number;
}

/** One request reduced to what time series (5-hour blocks, burn rates) need: cheap to read in bulk. */
export interface UsagePoint {
  ts: number;
  sessionId: string | null;
  model: string | null;
  input: number;
  output: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  /** USD, or null when the model has no price. */
  cost: number | null;
}

export interface StoredRequest extends RequestRecord {
  cost: number | null;
}

/** One store for every source; SQLite by default. Every implementation passes test/store/common.case.ts. */
export interface Store {
  readonly location: string;
  /** Insert or merge records (same key = same request: the larger usage wins, metadata fills gaps). */
  upsertRequests(records: RequestRecord[]): Promise<UpsertResult>;
  getCheckpoint(path: string, pass?: SyncPass): Promise<FileCheckpoint | undefined>;
  /** Every file checkpoint of a pass, by path (one query instead of one per file on a warm sync). */
  listCheckpoints(pass?: SyncPass): Promise<Map<string, FileCheckpoint>>;
  /**
   * What a sync compares with each file's stat, by path: `dev:ino:size:mtimeMs` (integers in decimal). Much
   * cheaper than listCheckpoints on a warm sync, which then needs full checkpoints only for the changed files.
   */
  listCheckpointStates(pass?: SyncPass): Promise<Map<string, string>>;
  /** Records, tool facts and the pass's file positions are committed together, so an interrupted sync never half-counts. */
  commitBatch(checkpoints: FileCheckpoint[], records: RequestRecord[], facts?: SessionFacts, pass?: SyncPass): Promise<UpsertResult>;
  listToolCalls(filter: FactFilter): Promise<ToolCall[]>;
  listToolResults(filter: FactFilter): Promise<ToolResult[]>;
  listCompactions(filter: FactFilter): Promise<Compaction[]>;
  summarize(filter: RequestFilter, groupBy: GroupDim[]): Promise<UsageGroup[]>;
  listRequests(filter: RequestFilter & { limit?: number }): Promise<StoredRequest[]>;
  /** Requests as usage points, oldest first (newest first with `newestFirst`), e.g. a time range for blocks. */
  listUsage(filter: RequestFilter & { limit?: number; newestFirst?: boolean }): Promise<UsagePoint[]>;
  countRequests(): Promise<number>;
  /** Hint that a large import is starting (true) or over (false); a store may defer housekeeping meanwhile. */
  setBulkImport?(on: boolean): void;
  /** Budgets (src/policy/budgets.ts): insert or replace by name. */
  saveBudget(budget: BudgetDefinition): Promise<'created' | 'updated'>;
  listBudgets(): Promise<BudgetDefinition[]>;
  /** False when there was no such budget. Its alerts stay listed. */
  deleteBudget(name: string): Promise<boolean>;
  /** Cost of the requests a budget counts (every source), on indexed columns only. */
  sumSpend(filter: SpendFilter): Promise<SpendTotal>;
  /** Request times in [fromTs, toTs), ascending (5-hour blocks). */
  listRequestTimes(fromTs: number, toTs: number): Promise<number[]>;
  /** Store an alert unless the same (budget, version, period key, threshold) fired already; returns it with its id, or null. */
  recordAlert(alert: AlertRecord): Promise<AlertRecord | null>;
  listAlerts(filter: AlertFilter): Promise<AlertRecord[]>;
  markAlertDelivered(id: number, delivery: string): Promise<void>;
  recordRouteDecision(decision: RouteDecision): Promise<number>;
  /** Fill in a decision's settled fields (request key and actual/alternative costs). */
  updateRouteDecision(id: number, fields: Pick<RouteDecision, 'requestKey' | 'costActual' | 'costAlternative'>): Promise<void>;
  listRouteDecisions(filter: { fromTs?: number; toTs?: number; limit?: number }): Promise<RouteDecision[]>;
  /**
   * `atExit`: the process exits right after (the CLI). A file store may then leave its write-ahead log for the
   * next open (made durable first) instead of copying it into the database now; the data is the same.
   */
  close(options?: { atExit?: boolean }): Promise<void>;
}

export interface AlertFilter {
  budget?: string;
  budgetVersion?: number;
  periodKey?: string;
  fromTs?: number;
  /** Only alerts not delivered yet. */
  pending?: boolean;
  /** Newest first, at most this many. */
  limit?: number;
}

export class StoreError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

export type { PriceBook };
