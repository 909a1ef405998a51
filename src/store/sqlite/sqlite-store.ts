import type Database from 'better-sqlite3';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ProxyDetails, RequestRecord } from '../../core/types.js';
import { totalTokens } from '../../core/types.js';
import type { PriceBook } from '../../core/pricing/pricebook.js';
import type { Compaction, SessionFacts, ToolCall, ToolResult } from '../../core/session-facts.js';
import {
  StoreError, type AlertFilter, type FactFilter, type FileCheckpoint, type GroupDim, type RequestFilter, type Store, type StoredRequest,
  type UpsertResult, type UsageGroup,
  type SyncPass,
} from '../store.js';
import { MIGRATIONS } from './migrations.js';
import type { BudgetDefinition, SpendFilter, SpendTotal } from '../../policy/budgets.js';
import type { AlertRecord } from '../../policy/alerts.js';
import type { RouteDecision } from '../../policy/routing.js';

type Row = Record<string, unknown>;

/**
 * better-sqlite3, loaded at the first open (a process that imports this module but never opens a store, such as
 * the statusline answering from its caches, pays nothing), and its compiled addon's path, handed to better-sqlite3
 * so it skips the `bindings` package's path search (3-10 ms of every start: most of what the statusline can
 * spend); undefined (search as usual) when the addon is elsewhere. Loaded with require: importing the CommonJS
 * package from ESM would run Node's export scanner over it (~5 ms).
 */
let sqlite: { Database: typeof Database; nativeBinding: string | undefined } | undefined;
function betterSqlite3(): { Database: typeof Database; nativeBinding: string | undefined } {
  if (sqlite) return sqlite;
  const require = createRequire(import.meta.url);
  let nativeBinding: string | undefined;
  try {
    const p = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');
    nativeBinding = existsSync(p) ? p : undefined;
  } catch {
    nativeBinding = undefined;
  }
  return (sqlite = { Database: require('better-sqlite3') as typeof Database, nativeBinding });
}

/** A WAL up to this size may be left for the next open by close({ atExit }) (SQLite's autocheckpoint: 1,000 pages). */
const LEAVE_WAL_MAX_BYTES = 8 * 1024 * 1024;

const USAGE_COLS = ['input', 'output', 'cache_write_5m', 'cache_write_1h', 'cache_read', 'web_searches', 'web_fetches',
  'speed', 'inference_geo', 'service_tier', 'total_tokens', 'cost'] as const;

/** What the live proxy saw (migration 3); NULL on rows only imported from transcripts. */
const PROXY_COLS = ['endpoint', 'model_requested', 'stream', 'status', 'error_type', 'latency_ms', 'ttft_ms',
  'request_bytes', 'message_count', 'user_agent', 'key_hash'] as const;

const INSERT_COLS = ['key', 'request_id', 'message_id', 'ts', 'session_id', 'project', 'agent_id', 'is_subagent', 'model',
  ...USAGE_COLS, 'stop_reason', 'tools', 'client_version', 'sources', ...PROXY_COLS];
// Positional parameters: binding ~40 named ones per row was a tenth of an import's insert time.
const INSERT_SQL = `INSERT OR IGNORE INTO requests (${INSERT_COLS.join(', ')}) VALUES (${INSERT_COLS.map(() => '?').join(', ')})`;

// A later copy of a request replaces the usage only when it is larger (streamed lines grow);
// identity and attribution fill gaps; a main-thread copy beats a subagent replay.
const MERGE_SQL = `UPDATE requests SET
  ${USAGE_COLS.map((c) => `${c} = CASE WHEN @total_tokens > total_tokens THEN @${c} ELSE ${c} END`).join(',\n  ')},
  ts = CASE WHEN @total_tokens > total_tokens AND (sources & 1) = 0 THEN @ts ELSE ts END,
  stop_reason = CASE WHEN @total_tokens > total_tokens THEN COALESCE(@stop_reason, stop_reason) ELSE COALESCE(stop_reason, @stop_reason) END,
  request_id = COALESCE(request_id, @request_id),
  message_id = COALESCE(message_id, @message_id),
  session_id = COALESCE(session_id, @session_id),
  project = COALESCE(project, @project),
  agent_id = CASE WHEN is_subagent AND @is_subagent THEN COALESCE(agent_id, @agent_id) ELSE NULL END,
  is_subagent = is_subagent AND @is_subagent,
  model = COALESCE(model, @model),
  tools = CASE WHEN length(COALESCE(@tools, '')) > length(COALESCE(tools, '')) THEN @tools ELSE tools END,
  client_version = COALESCE(client_version, @client_version),
  ${PROXY_COLS.map((c) => `${c} = CASE WHEN @total_tokens > total_tokens THEN COALESCE(@${c}, ${c}) ELSE COALESCE(${c}, @${c}) END`).join(',\n  ')},
  sources = sources | @sources
  WHERE key = @key`;

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** Prepared at the first write: a reader (the statusline when its session did not grow) never pays for them. */
  private writer?: (rows: Row[]) => UpsertResult;
  private readonly saveCheckpoint: Partial<Record<SyncPass, Database.Statement>> = {};
  private readonly checkpointByPath: Partial<Record<SyncPass, Database.Statement>> = {};
  private factStatements?: { call: Database.Statement; result: Database.Statement; compaction: Database.Statement };

  private constructor(readonly location: string, db: Database.Database, private readonly prices: PriceBook) {
    this.db = db;
  }

  /** Insert new rows, merge the others (see MERGE_SQL), and keep the rollup in step; the statements are prepared once. */
  private get upsertMany(): (rows: Row[]) => UpsertResult {
    return this.writer ??= this.prepareWriter();
  }

  private prepareWriter(): (rows: Row[]) => UpsertResult {
    const db = this.db;
    const insert = db.prepare(INSERT_SQL);
    const merge = db.prepare(MERGE_SQL);
    const byKey = db.prepare('SELECT * FROM requests WHERE key = ?');
    const messageKeyOf = db.prepare("SELECT key FROM requests WHERE request_id = ? AND key LIKE 'm:%' LIMIT 1").pluck();
    const remove = db.prepare('DELETE FROM requests WHERE key = ?');
    // Most stores hold no `r:` rows (only failed or cut proxy requests make them): skip the lookup then.
    const anyRequestKey = db.prepare("SELECT 1 FROM requests WHERE key >= 'r:' AND key < 'r;' LIMIT 1").pluck();
    const addToRollup = db.prepare(`INSERT INTO rollup VALUES (@q, @model, @requests, @input, @output, @cw5m, @cw1h, @cr, @web,
      @cost, @unknownTokens, @unknownRequests, @firstTs, @lastTs)
      ON CONFLICT(quarter_hour, model) DO UPDATE SET requests = requests + excluded.requests, input = input + excluded.input,
        output = output + excluded.output, cache_write_5m = cache_write_5m + excluded.cache_write_5m,
        cache_write_1h = cache_write_1h + excluded.cache_write_1h, cache_read = cache_read + excluded.cache_read,
        web_searches = web_searches + excluded.web_searches, cost = cost + excluded.cost,
        unknown_tokens = unknown_tokens + excluded.unknown_tokens, unknown_requests = unknown_requests + excluded.unknown_requests,
        first_ts = MIN(first_ts, excluded.first_ts), last_ts = MAX(last_ts, excluded.last_ts)`);
    return (rows) => {
      let inserted = 0;
      let updated = 0;
      // New rows' sums, added to the rollup once per (quarter hour, model) at the end of the batch.
      const sums = new Map<string, Row>();
      const flushSums = () => {
        for (const g of sums.values()) addToRollup.run(g);
        sums.clear();
      };
      const addInserted = (row: Row) => {
        const ts = row.ts as number;
        const model = (row.model as string | null) ?? '';
        const q = Math.floor(ts / 900_000);
        const k = `${q}\u0000${model}`;
        let g = sums.get(k);
        if (!g) sums.set(k, (g = { q, model, requests: 0, input: 0, output: 0, cw5m: 0, cw1h: 0, cr: 0, web: 0, cost: 0,
          unknownTokens: 0, unknownRequests: 0, firstTs: ts, lastTs: ts }));
        (g.requests as number)++;
        g.input = (g.input as number) + (row.input as number);
        g.output = (g.output as number) + (row.output as number);
        g.cw5m = (g.cw5m as number) + (row.cache_write_5m as number);
        g.cw1h = (g.cw1h as number) + (row.cache_write_1h as number);
        g.cr = (g.cr as number) + (row.cache_read as number);
        g.web = (g.web as number) + (row.web_searches as number);
        if (row.cost === null) {
          g.unknownTokens = (g.unknownTokens as number) + (row.total_tokens as number);
          (g.unknownRequests as number)++;
        } else {
          g.cost = (g.cost as number) + (row.cost as number);
        }
        g.firstTs = Math.min(g.firstTs as number, ts);
        g.lastTs = Math.max(g.lastTs as number, ts);
      };
      let orphansPossible = anyRequestKey.get() !== undefined;
      // One positional parameter array for every insert (an array per row was a tenth of a cold import's garbage).
      const params: unknown[] = new Array(INSERT_COLS.length);
      for (let row of rows) {
        if ((row.key as string).startsWith('r:')) orphansPossible = true;
        // One request seen with and without its message id (a proxy record of a stream cut before
        // message_start, a transcript line without message.id) is one row: the `m:` key absorbs the `r:` one.
        const requestId = row.request_id as string | null;
        if (requestId && (row.key as string).startsWith('r:')) {
          const owner = messageKeyOf.get(requestId) as string | undefined;
          if (owner) row = { ...row, key: owner };
        }
        for (let i = 0; i < INSERT_COLS.length; i++) params[i] = row[INSERT_COLS[i]];
        if (insert.run(params).changes === 1) {
          inserted++;
          addInserted(row);
        } else {
          // The update trigger adjusts the rollup: it must already hold this batch's inserts.
          flushSums();
          merge.run(row);
          updated++;
        }
        if (orphansPossible && requestId && (row.key as string).startsWith('m:')) {
          const orphan = byKey.get(`r:${requestId}`) as Row | undefined;
          if (orphan) {
            flushSums();
            merge.run({ ...orphan, key: row.key });
            remove.run(orphan.key);
            inserted--;
            updated++;
          }
        }
      }
      flushSums();
      return { inserted, updated };
    };
  }

  /** Open (creating or upgrading in place) the database at `path`; `:memory:` for tests. */
  /**
   * `cacheKb`: SQLite's page cache for this connection (default 32 MB: imports touch many index pages and the
   * default 2 MB thrashes on large syncs). A long-lived writer of small batches (the proxy's store worker) needs
   * far less, and its memory would otherwise grow with the database up to the full cache.
   */
  static open(path: string, prices: PriceBook, options: { readonly?: boolean; busyTimeoutMs?: number; cacheKb?: number } = {}): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database | undefined;
    try {
      const { Database: DatabaseCtor, nativeBinding } = betterSqlite3();
      db = new DatabaseCtor(path, { readonly: options.readonly ?? false, nativeBinding });
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      if (!options.readonly && path !== ':memory:') db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`cache_size = -${Math.max(256, Math.floor(options.cacheKb ?? 32768))}`);
      migrate(db, path);
      const store = new SqliteStore(path, db, prices);
      if (!options.readonly) store.repriceIfNeeded();
      return store;
    } catch (err) {
      db?.close();
      throw asStoreError(err, path);
    }
  }

  /** Schema version of an open database (number of migrations applied). */
  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  async upsertRequests(records: RequestRecord[]): Promise<UpsertResult> {
    return this.guard(() => this.db.transaction(this.upsertMany)(records.map((r) => this.toRow(r))));
  }

  async getCheckpoint(path: string, pass: SyncPass = 'requests'): Promise<FileCheckpoint | undefined> {
    return this.guard(() => {
      const row = (this.checkpointByPath[pass] ??= this.db.prepare(`SELECT * FROM ${checkpointTable(pass)} WHERE path = ?`)).get(path) as Row | undefined;
      return row ? checkpointFromRow(row) : undefined;
    });
  }

  async listCheckpoints(pass: SyncPass = 'requests'): Promise<Map<string, FileCheckpoint>> {
    return this.guard(() => new Map((this.db.prepare(`SELECT * FROM ${checkpointTable(pass)}`).all() as Row[])
      .map((row) => [row.path as string, checkpointFromRow(row)])));
  }

  async listCheckpointStates(pass: SyncPass = 'requests'): Promise<Map<string, string>> {
    return this.guard(() => {
      // One string from SQLite, split here: ~3 ms for 3,000 files where rows as objects cost ~10-20 ms.
      const all = this.db.prepare(`SELECT group_concat(path || char(0) || dev || ':' || ino || ':' || size || ':' || mtime_ms, char(0))
        FROM ${checkpointTable(pass)}`).pluck().get() as string | null;
      const out = new Map<string, string>();
      if (!all) return out;
      const parts = all.split('\0');
      for (let i = 0; i + 1 < parts.length; i += 2) out.set(parts[i], parts[i + 1]);
      return out;
    });
  }

  async commitBatch(checkpoints: FileCheckpoint[], records: RequestRecord[], facts?: SessionFacts, pass: SyncPass = 'requests'): Promise<UpsertResult> {
    const rows = records.map((r) => this.toRow(r));
    const save = this.saveCheckpoint[pass] ??= this.db.prepare(`INSERT INTO ${checkpointTable(pass)} (path, dev, ino, size, mtime_ms, offset, lines, head)
      VALUES (@path, @dev, @ino, @size, @mtimeMs, @offset, @lines, @head)
      ON CONFLICT(path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size,
        mtime_ms = excluded.mtime_ms, offset = excluded.offset, lines = excluded.lines, head = excluded.head`);
    return this.guard(() => this.db.transaction(() => {
      const res = this.upsertMany(rows);
      if (facts) this.saveFacts(facts);
      for (const cp of checkpoints) save.run(cp);
      return res;
    })());
  }

  async summarize(filter: RequestFilter, groupBy: GroupDim[]): Promise<UsageGroup[]> {
    return this.guard(() => {
      const byTimeAndModel = filter.project === undefined && filter.sessionId === undefined
        && groupBy.every((d) => d === 'quarterHour' || d === 'localDay' || d === 'model');
      const rows = byTimeAndModel ? this.summarizeFromRollup(filter, groupBy) : this.summarizeRequests(filter, groupBy);
      return rows.filter((r) => r.requests > 0);
    });
  }

  private summarizeRequests(filter: RequestFilter, groupBy: GroupDim[]): UsageGroup[] {
    const day = groupBy.includes('localDay') ? localDayExpr(filter) : '';
    const dimSql: Record<GroupDim, string> = {
      quarterHour: 'quarter_hour AS quarterHour',
      localDay: `${day} AS localDay`,
      model: 'model',
      session: 'session_id AS session',
      project: 'project',
    };
    const dimKey: Record<GroupDim, string> = { quarterHour: 'quarter_hour', localDay: 'localDay', model: 'model', session: 'session_id', project: 'project' };
    const { where, params } = whereClause(filter);
    const select = [
      ...groupBy.map((d) => dimSql[d]),
      'COUNT(*) AS requests', 'SUM(input) AS input', 'SUM(output) AS output',
      'SUM(cache_write_5m) AS cacheWrite5m', 'SUM(cache_write_1h) AS cacheWrite1h', 'SUM(cache_read) AS cacheRead',
      'SUM(web_searches) AS webSearches', 'TOTAL(cost) AS cost',
      'SUM(CASE WHEN cost IS NULL THEN total_tokens ELSE 0 END) AS unknownCostTokens',
      'SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END) AS unknownCostRequests',
      'MIN(ts) AS firstTs', 'MAX(ts) AS lastTs',
    ];
    const groupSql = groupBy.length ? `GROUP BY ${groupBy.map((d) => dimKey[d]).join(', ')}` : '';
    return this.db.prepare(`SELECT ${select.join(', ')} FROM requests ${where} ${groupSql}`).all(params) as UsageGroup[];
  }

  /**
   * Time and model sums from the rollup (migration 8): whole quarter hours come from it, and the partial
   * quarter hours at either end of the range from the requests themselves, so the answer is exact.
   */
  private summarizeFromRollup(filter: RequestFilter, groupBy: GroupDim[]): UsageGroup[] {
    const Q = 900_000;
    const fromQ = filter.fromTs === undefined ? undefined : Math.ceil(filter.fromTs / Q);
    const toQ = filter.toTs === undefined ? undefined : Math.floor(filter.toTs / Q);
    if (fromQ !== undefined && toQ !== undefined && fromQ >= toQ) return this.summarizeRequests(filter, groupBy);
    const parts: string[] = [];
    const params: Row = {};
    if (fromQ !== undefined) { parts.push('quarter_hour >= @fromQ'); params.fromQ = fromQ; }
    if (toQ !== undefined) { parts.push('quarter_hour < @toQ'); params.toQ = toQ; }
    const dims = groupBy.map((d) => (d === 'quarterHour' ? 'quarter_hour AS quarterHour'
      : d === 'localDay' ? `${localDayExpr(filter)} AS localDay` : "NULLIF(model, '') AS model"));
    const keys = groupBy.map((d) => (d === 'quarterHour' ? 'quarter_hour' : d === 'localDay' ? 'localDay' : 'model'));
    const rows = this.db.prepare(`SELECT ${[...dims, 'SUM(requests) AS requests', 'SUM(input) AS input', 'SUM(output) AS output',
      'SUM(cache_write_5m) AS cacheWrite5m', 'SUM(cache_write_1h) AS cacheWrite1h', 'SUM(cache_read) AS cacheRead',
      'SUM(web_searches) AS webSearches', 'TOTAL(cost) AS cost', 'SUM(unknown_tokens) AS unknownCostTokens',
      'SUM(unknown_requests) AS unknownCostRequests', 'MIN(first_ts) AS firstTs', 'MAX(last_ts) AS lastTs'].join(', ')}
      FROM rollup ${parts.length ? `WHERE ${parts.join(' AND ')}` : ''} ${keys.length ? `GROUP BY ${keys.join(', ')}` : ''}`).all(params) as UsageGroup[];
    const edges: UsageGroup[] = [];
    const offsets = filter.localDayOffsets;
    if (fromQ !== undefined && filter.fromTs! < fromQ * Q) edges.push(...this.summarizeRequests({ fromTs: filter.fromTs, toTs: fromQ * Q, localDayOffsets: offsets }, groupBy));
    if (toQ !== undefined && filter.toTs! > toQ * Q) edges.push(...this.summarizeRequests({ fromTs: toQ * Q, toTs: filter.toTs, localDayOffsets: offsets }, groupBy));
    if (edges.length === 0) return rows;
    const keyOf = (g: UsageGroup) => `${g.quarterHour ?? ''}\u0000${g.localDay ?? ''}\u0000${g.model ?? ''}`;
    const merged = new Map(rows.map((g) => [keyOf(g), g]));
    for (const e of edges) {
      const g = merged.get(keyOf(e));
      if (!g) { merged.set(keyOf(e), e); continue; }
      for (const f of ['requests', 'input', 'output', 'cacheWrite5m', 'cacheWrite1h', 'cacheRead', 'webSearches', 'cost',
        'unknownCostTokens', 'unknownCostRequests'] as const) g[f] += e[f];
      g.firstTs = Math.min(g.firstTs, e.firstTs);
      g.lastTs = Math.max(g.lastTs, e.lastTs);
    }
    return [...merged.values()];
  }


  async listRequests(filter: RequestFilter & { limit?: number }): Promise<StoredRequest[]> {
    const { where, params } = whereClause(filter);
    const limit = filter.limit ? `LIMIT ${Math.max(1, Math.floor(filter.limit))}` : '';
    return this.guard(() => (this.db.prepare(`SELECT * FROM requests ${where} ORDER BY ts DESC ${limit}`).all(params) as Row[])
      .map(fromRow));
  }

  async listUsage(filter: RequestFilter & { limit?: number; newestFirst?: boolean }): Promise<import('../store.js').UsagePoint[]> {
    const { where, params } = whereClause(filter);
    const limit = filter.limit ? `LIMIT ${Math.max(1, Math.floor(filter.limit))}` : '';
    return this.guard(() => this.db.prepare(`SELECT ts, session_id AS sessionId, model, input, output,
      cache_write_5m AS cacheWrite5m, cache_write_1h AS cacheWrite1h, cache_read AS cacheRead, cost
      FROM requests ${where} ORDER BY ts ${filter.newestFirst ? 'DESC' : 'ASC'} ${limit}`).all(params) as import('../store.js').UsagePoint[]);
  }

  async listToolCalls(filter: FactFilter): Promise<ToolCall[]> {
    const { where, params } = factWhere(filter);
    return this.guard(() => this.db.prepare(`SELECT tool_use_id AS toolUseId, request_key AS requestKey, session_id AS sessionId,
      agent_id AS agentId, ts, name, input_chars AS inputChars, target FROM tool_calls ${where} ORDER BY ts`).all(params) as ToolCall[]);
  }

  async listToolResults(filter: FactFilter): Promise<ToolResult[]> {
    const { where, params } = factWhere(filter);
    return this.guard(() => (this.db.prepare(`SELECT tool_use_id AS toolUseId, session_id AS sessionId, agent_id AS agentId, ts,
      result_chars AS resultChars, is_error AS isError FROM tool_results ${where} ORDER BY ts`).all(params) as Row[])
      .map((r) => ({ ...r, isError: r.isError === 1 }) as ToolResult));
  }

  async listCompactions(filter: FactFilter): Promise<Compaction[]> {
    const { where, params } = factWhere(filter);
    return this.guard(() => this.db.prepare(`SELECT session_id AS sessionId, agent_id AS agentId, ts, trigger, pre_tokens AS preTokens
      FROM compactions ${where} ORDER BY ts`).all(params) as Compaction[]);
  }

  private saveFacts(facts: SessionFacts): void {
    // Forked sessions copy tool calls and results verbatim: the first copy is kept.
    const st = this.factStatements ??= {
      call: this.db.prepare(`INSERT OR IGNORE INTO tool_calls (tool_use_id, request_key, session_id, agent_id, ts, name, input_chars, target)
        VALUES (@toolUseId, @requestKey, @sessionId, @agentId, @ts, @name, @inputChars, @target)`),
      result: this.db.prepare(`INSERT OR IGNORE INTO tool_results (tool_use_id, session_id, agent_id, ts, result_chars, is_error)
        VALUES (@toolUseId, @sessionId, @agentId, @ts, @resultChars, @isError)`),
      compaction: this.db.prepare(`INSERT OR IGNORE INTO compactions (session_id, agent_id, ts, trigger, pre_tokens)
        VALUES (@sessionId, @agentId, @ts, @trigger, @preTokens)`),
    };
    for (const c of facts.toolCalls) st.call.run(c);
    for (const r of facts.toolResults) st.result.run({ ...r, isError: r.isError ? 1 : 0 });
    for (const c of facts.compactions) st.compaction.run(c);
  }

  /** Checkpoint the WAL once at the end of a large import instead of every 4 MB (each one rewrites hot index pages and fsyncs). */
  setBulkImport(on: boolean): void {
    this.guard(() => {
      if (on) this.db.pragma('wal_autocheckpoint = 0');
      else {
        this.db.pragma('wal_autocheckpoint = 1000');
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      }
    });
  }

  /**
   * What the statusline's store-free path needs to know it can add new requests without a merge (see
   * statusline/fast.ts): every key stored for the session, whether any row is keyed by request id alone (a new line
   * could absorb one), and whether any row lies after `now` (a later full count would include it).
   */
  sessionKeyFacts(sessionId: string, now: number): { keys: string[]; requestIdRows: boolean; futureRows: boolean } {
    return this.guard(() => ({
      keys: this.db.prepare('SELECT key FROM requests WHERE session_id = ?').pluck().all(sessionId) as string[],
      requestIdRows: this.db.prepare("SELECT 1 FROM requests WHERE key >= 'r:' AND key < 'r;' LIMIT 1").pluck().get() !== undefined,
      futureRows: this.db.prepare('SELECT 1 FROM requests WHERE ts > ? LIMIT 1').pluck().get(now) !== undefined,
    }));
  }

  async countRequests(): Promise<number> {
    return this.guard(() => (this.db.prepare('SELECT COUNT(*) AS n FROM requests').get() as { n: number }).n);
  }

  async saveBudget(b: BudgetDefinition): Promise<'created' | 'updated'> {
    return this.guard(() => {
      const existed = this.db.prepare('SELECT 1 FROM budgets WHERE name = ?').get(b.name) !== undefined;
      this.db.prepare(`INSERT INTO budgets (name, limit_usd, period, scope, action, alerts, webhook, time_zone, week_start, created_at, updated_at)
        VALUES (@name, @limitUsd, @period, @scope, @action, @alerts, @webhook, @timeZone, @weekStart, @createdAt, @updatedAt)
        ON CONFLICT(name) DO UPDATE SET limit_usd = excluded.limit_usd, period = excluded.period, scope = excluded.scope,
          action = excluded.action, alerts = excluded.alerts, webhook = excluded.webhook, time_zone = excluded.time_zone,
          week_start = excluded.week_start, updated_at = excluded.updated_at`)
        .run({ ...b, alerts: b.alerts.join(',') });
      return existed ? 'updated' : 'created';
    });
  }

  async listBudgets(): Promise<BudgetDefinition[]> {
    return this.guard(() => (this.db.prepare('SELECT * FROM budgets ORDER BY name').all() as Row[]).map((r) => ({
      name: r.name as string, limitUsd: r.limit_usd as number, period: r.period as BudgetDefinition['period'],
      scope: r.scope as string, action: r.action as BudgetDefinition['action'],
      alerts: String(r.alerts).split(',').filter(Boolean).map(Number), webhook: (r.webhook as string | null) ?? null,
      timeZone: r.time_zone as string, weekStart: r.week_start as number, createdAt: r.created_at as number, updatedAt: r.updated_at as number,
    })));
  }

  async deleteBudget(name: string): Promise<boolean> {
    return this.guard(() => this.db.prepare('DELETE FROM budgets WHERE name = ?').run(name).changes > 0);
  }

  async sumSpend(f: SpendFilter): Promise<SpendTotal> {
    if (f.sessionId === undefined && f.projectPath === undefined && f.keyHash === undefined) {
      // Time and model scopes: sums from the rollup (a budget check runs before every prompt).
      return this.guard(() => {
        const groups = this.summarizeFromRollup({ fromTs: f.fromTs, toTs: f.toTs }, ['model']).filter((g) =>
          (f.models === undefined || f.models.includes(g.model ?? ''))
          && (f.modelPrefix === undefined || (g.model ?? '').startsWith(f.modelPrefix)));
        const live = groups.filter((g) => g.requests > 0);
        return {
          cost: live.reduce((a, g) => a + g.cost, 0),
          requests: live.reduce((a, g) => a + g.requests, 0),
          unknownCostRequests: live.reduce((a, g) => a + g.unknownCostRequests, 0),
          firstTs: live.length ? Math.min(...live.map((g) => g.firstTs)) : null,
          lastTs: live.length ? Math.max(...live.map((g) => g.lastTs)) : null,
        };
      });
    }
    const parts: string[] = [];
    const params: Row = {};
    if (f.fromTs !== undefined) { parts.push('ts >= @fromTs'); params.fromTs = f.fromTs; }
    if (f.toTs !== undefined) { parts.push('ts < @toTs'); params.toTs = f.toTs; }
    if (f.sessionId !== undefined) { parts.push('session_id = @sessionId'); params.sessionId = f.sessionId; }
    if (f.projectPath !== undefined) {
      parts.push(f.projectPath === '/' ? "substr(project, 1, 1) = '/'" : "(project = @projectPath OR substr(project, 1, length(@projectPath) + 1) = @projectPath || '/')");
      params.projectPath = f.projectPath;
    }
    if (f.models !== undefined) {
      parts.push(f.models.length ? `model IN (${f.models.map((_, i) => `@m${i}`).join(', ')})` : '0');
      f.models.forEach((m, i) => { params[`m${i}`] = m; });
    }
    if (f.modelPrefix !== undefined) { parts.push('substr(model, 1, length(@modelPrefix)) = @modelPrefix'); params.modelPrefix = f.modelPrefix; }
    if (f.keyHash !== undefined) { parts.push('key_hash = @keyHash'); params.keyHash = f.keyHash; }
    const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
    return this.guard(() => {
      const r = this.db.prepare(`SELECT TOTAL(cost) AS cost, COUNT(*) AS requests,
        SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END) AS unknown, MIN(ts) AS firstTs, MAX(ts) AS lastTs FROM requests ${where}`).get(params) as Row;
      return {
        cost: r.cost as number, requests: r.requests as number, unknownCostRequests: (r.unknown as number | null) ?? 0,
        firstTs: (r.firstTs as number | null) ?? null, lastTs: (r.lastTs as number | null) ?? null,
      };
    });
  }

  async listRequestTimes(fromTs: number, toTs: number): Promise<number[]> {
    return this.guard(() => this.db.prepare('SELECT ts FROM requests WHERE ts >= ? AND ts < ? ORDER BY ts').pluck().all(fromTs, toTs) as number[]);
  }

  async recordAlert(a: AlertRecord): Promise<AlertRecord | null> {
    return this.guard(() => {
      const res = this.db.prepare(`INSERT OR IGNORE INTO alerts (ts, budget, budget_version, period, period_key, threshold, spent_usd,
        limit_usd, percent, resets_at, source, message, delivery) VALUES (@ts, @budget, @budgetVersion, @period, @periodKey, @threshold,
        @spentUsd, @limitUsd, @percent, @resetsAt, @source, @message, @delivery)`).run({ ...a, delivery: a.delivery ?? null });
      return res.changes === 1 ? { ...a, id: Number(res.lastInsertRowid) } : null;
    });
  }

  async listAlerts(f: AlertFilter): Promise<AlertRecord[]> {
    const parts: string[] = [];
    const params: Row = {};
    if (f.budget !== undefined) { parts.push('budget = @budget'); params.budget = f.budget; }
    if (f.budgetVersion !== undefined) { parts.push('budget_version = @budgetVersion'); params.budgetVersion = f.budgetVersion; }
    if (f.periodKey !== undefined) { parts.push('period_key = @periodKey'); params.periodKey = f.periodKey; }
    if (f.fromTs !== undefined) { parts.push('ts >= @fromTs'); params.fromTs = f.fromTs; }
    if (f.pending) parts.push('delivery IS NULL');
    const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
    const limit = f.limit ? `LIMIT ${Math.max(1, Math.floor(f.limit))}` : '';
    return this.guard(() => (this.db.prepare(`SELECT * FROM alerts ${where} ORDER BY ts DESC, id DESC ${limit}`).all(params) as Row[]).map((r) => ({
      id: r.id as number, ts: r.ts as number, budget: r.budget as string, budgetVersion: r.budget_version as number,
      period: r.period as AlertRecord['period'], periodKey: r.period_key as string, threshold: r.threshold as number,
      spentUsd: r.spent_usd as number, limitUsd: r.limit_usd as number, percent: r.percent as number,
      resetsAt: (r.resets_at as number | null) ?? null, source: r.source as string, message: r.message as string,
      delivery: (r.delivery as string | null) ?? null,
    })));
  }

  async markAlertDelivered(id: number, delivery: string): Promise<void> {
    this.guard(() => this.db.prepare('UPDATE alerts SET delivery = ? WHERE id = ?').run(delivery, id));
  }

  async recordRouteDecision(d: RouteDecision): Promise<number> {
    return this.guard(() => Number(this.db.prepare(`INSERT INTO route_decisions (ts, kind, rule, outcome, model_from, model_to, session_id,
      request_key, complexity, est_input_tokens, est_cost_from, est_cost_to, reason, system_fingerprint, cost_actual, cost_alternative)
      VALUES (@ts, @kind, @rule, @outcome, @modelFrom, @modelTo, @sessionId, @requestKey, @complexity, @estInputTokens, @estCostFrom,
      @estCostTo, @reason, @systemFingerprint, @costActual, @costAlternative)`).run({ ...d, id: undefined }).lastInsertRowid));
  }

  async updateRouteDecision(id: number, f: Pick<RouteDecision, 'requestKey' | 'costActual' | 'costAlternative'>): Promise<void> {
    this.guard(() => this.db.prepare(`UPDATE route_decisions SET request_key = COALESCE(@requestKey, request_key),
      cost_actual = @costActual, cost_alternative = @costAlternative WHERE id = @id`).run({ ...f, id }));
  }

  async listRouteDecisions(f: { fromTs?: number; toTs?: number; limit?: number }): Promise<RouteDecision[]> {
    const parts: string[] = [];
    const params: Row = {};
    if (f.fromTs !== undefined) { parts.push('ts >= @fromTs'); params.fromTs = f.fromTs; }
    if (f.toTs !== undefined) { parts.push('ts < @toTs'); params.toTs = f.toTs; }
    const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
    const limit = f.limit ? `LIMIT ${Math.max(1, Math.floor(f.limit))}` : '';
    return this.guard(() => (this.db.prepare(`SELECT * FROM route_decisions ${where} ORDER BY ts DESC, id DESC ${limit}`).all(params) as Row[]).map((r) => ({
      id: r.id as number, ts: r.ts as number, kind: r.kind as RouteDecision['kind'], rule: r.rule as string,
      outcome: r.outcome as RouteDecision['outcome'], modelFrom: r.model_from as string, modelTo: r.model_to as string,
      sessionId: (r.session_id as string | null) ?? null, requestKey: (r.request_key as string | null) ?? null,
      complexity: (r.complexity as number | null) ?? null, estInputTokens: r.est_input_tokens as number,
      estCostFrom: (r.est_cost_from as number | null) ?? null, estCostTo: (r.est_cost_to as number | null) ?? null,
      reason: (r.reason as string | null) ?? null, systemFingerprint: (r.system_fingerprint as string | null) ?? null,
      costActual: (r.cost_actual as number | null) ?? null, costAlternative: (r.cost_alternative as number | null) ?? null,
    })));
  }

  /**
   * `walLimitBytes` (with `atExit`): a WAL over this size is checkpointed and truncated to nothing instead of left
   * (SQLite cannot restart a WAL the next process reads back: its index is rebuilt as if nothing was checkpointed).
   */
  async close(options: { atExit?: boolean; walLimitBytes?: number } = {}): Promise<void> {
    if (!this.db.open) return;
    if (options.atExit && this.leaveWalForExit(options.walLimitBytes)) return;
    this.db.close();
  }

  /**
   * Closing the last connection checkpoints the WAL into the database: ~20 ms for the ~300 pages a warm sync
   * writes, most of a warm report's close. A process about to exit can skip that: exiting through
   * process.exit() does not run better-sqlite3's cleanup, so the connection is never closed and SQLite never
   * checkpoints; the WAL stays, with every committed transaction, and the next open reads it (SQLite itself
   * checkpoints when it passes wal_autocheckpoint, 1,000 pages). Durability is then what `synchronous=NORMAL`
   * promises for WAL mode: committed transactions survive a crash of the process, and a power loss or OS crash
   * before the OS writes the WAL back may roll the last ones back, never corrupt the database. Callers that
   * use this (reports, the statusline) only write transcript imports, whose rows roll back together with their
   * file checkpoints: the next sync reads those lines again. (An fsync here cost 0.3-25 ms on a VM's disk.)
   * Only when the WAL is small: a large one is checkpointed now rather than replayed by every later open.
   */
  private leaveWalForExit(limitBytes?: number): boolean {
    if (this.location === ':memory:' || this.db.readonly) return false;
    try {
      const fd = openSync(`${this.location}-wal`, 'r');
      try {
        const size = fstatSync(fd).size;
        if (size > LEAVE_WAL_MAX_BYTES) return false;
        // Not busy (0): every frame is in the database, synced, and the WAL is empty.
        if (limitBytes !== undefined && size > limitBytes) return (this.db.pragma('wal_checkpoint(TRUNCATE)') as Row[])[0]?.busy === 0;
      } finally {
        closeSync(fd);
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Stored costs follow the price book: when prices change (a new release or prices.json), re-price every row. */
  private repriceIfNeeded(): void {
    const current = this.db.prepare("SELECT value FROM meta WHERE key = 'price_fingerprint'").get() as { value: string } | undefined;
    if (current?.value === this.prices.fingerprint) return;
    const rows = this.db.prepare(`SELECT key, ts, model, input, output, cache_write_5m, cache_write_1h, cache_read,
      web_searches, speed, inference_geo, service_tier FROM requests`).all() as Row[];
    const update = this.db.prepare('UPDATE requests SET cost = ? WHERE key = ?');
    this.db.transaction(() => {
      for (const row of rows) {
        const r = fromRow(row);
        update.run(this.prices.price(r.model, r.ts, r.usage).cost, r.key);
      }
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('price_fingerprint', ?)
        ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(this.prices.fingerprint);
    })();
  }

  private toRow(r: RequestRecord): Row {
    const u = r.usage;
    const p = r.proxy;
    return {
      key: r.key, request_id: r.requestId, message_id: r.messageId, ts: r.ts, session_id: r.sessionId,
      project: r.project, agent_id: r.agentId, is_subagent: r.isSubagent ? 1 : 0, model: r.model,
      input: u.input, output: u.output, cache_write_5m: u.cacheWrite5m, cache_write_1h: u.cacheWrite1h,
      cache_read: u.cacheRead, web_searches: u.webSearches, web_fetches: u.webFetches, speed: u.speed,
      inference_geo: u.inferenceGeo, service_tier: u.serviceTier, total_tokens: totalTokens(u),
      cost: this.prices.price(r.model, r.ts, u).cost,
      stop_reason: r.stopReason, tools: r.tools.length ? r.tools.join(',') : null,
      client_version: r.clientVersion, sources: r.sources,
      endpoint: p?.endpoint ?? null, model_requested: p?.modelRequested ?? null,
      stream: p ? (p.stream ? 1 : 0) : null, status: p?.status ?? null, error_type: p?.errorType ?? null,
      latency_ms: p ? Math.round(p.latencyMs) : null, ttft_ms: p?.ttftMs == null ? null : Math.round(p.ttftMs),
      request_bytes: p?.requestBytes ?? null, message_count: p?.messageCount ?? null,
      user_agent: p?.userAgent ?? null, key_hash: p?.keyHash ?? null,
    };
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw asStoreError(err, this.location);
    }
  }
}

function migrate(db: Database.Database, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new StoreError(`database ${path} has schema version ${version}, newer than this tokentally understands (${MIGRATIONS.length})`,
      'upgrade tokentally, or point TOKENTALLY_HOME at another folder');
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** SQL for the local day of `quarter_hour`: UTC plus the offset in force, in whole days since 1970-01-01. */
function localDayExpr(filter: RequestFilter): string {
  const changes = filter.localDayOffsets;
  if (!changes?.length) throw new Error('grouping by localDay needs filter.localDayOffsets');
  const q = (n: number) => String(Math.trunc(n));
  const offset = changes.length === 1 ? q(changes[0].offsetQ)
    : `CASE ${[...changes].reverse().slice(0, -1).map((c) => `WHEN quarter_hour >= ${q(c.fromQ)} THEN ${q(c.offsetQ)}`).join(' ')} ELSE ${q(changes[0].offsetQ)} END`;
  return `((quarter_hour + ${offset}) / 96)`;
}

function checkpointTable(pass: SyncPass): string {
  return pass === 'facts' ? 'fact_files' : 'files';
}

function checkpointFromRow(row: Row): FileCheckpoint {
  return {
    path: row.path as string, dev: row.dev as number, ino: row.ino as number, size: row.size as number,
    mtimeMs: row.mtime_ms as number, offset: row.offset as number, lines: row.lines as number, head: row.head as string,
  };
}

function factWhere(f: FactFilter): { where: string; params: Row } {
  const parts: string[] = [];
  const params: Row = {};
  if (f.sessionId !== undefined) { parts.push('session_id = @sessionId'); params.sessionId = f.sessionId; }
  if (f.fromTs !== undefined) { parts.push('ts >= @fromTs'); params.fromTs = f.fromTs; }
  if (f.toTs !== undefined) { parts.push('ts < @toTs'); params.toTs = f.toTs; }
  return { where: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

function whereClause(f: RequestFilter): { where: string; params: Row } {
  const parts: string[] = [];
  const params: Row = {};
  if (f.fromTs !== undefined) { parts.push('ts >= @fromTs'); params.fromTs = f.fromTs; }
  if (f.toTs !== undefined) { parts.push('ts < @toTs'); params.toTs = f.toTs; }
  if (f.project !== undefined) { parts.push('instr(project, @project) > 0'); params.project = f.project; }
  if (f.sessionId !== undefined) { parts.push('session_id = @sessionId'); params.sessionId = f.sessionId; }
  return { where: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

function fromRow(row: Row): StoredRequest {
  return {
    key: row.key as string,
    requestId: (row.request_id as string | null) ?? null,
    messageId: (row.message_id as string | null) ?? null,
    ts: row.ts as number,
    sessionId: (row.session_id as string | null) ?? null,
    project: (row.project as string | null) ?? null,
    agentId: (row.agent_id as string | null) ?? null,
    isSubagent: row.is_subagent === 1,
    model: (row.model as string | null) ?? null,
    usage: {
      input: row.input as number, output: row.output as number, cacheWrite5m: row.cache_write_5m as number,
      cacheWrite1h: row.cache_write_1h as number, cacheRead: row.cache_read as number,
      webSearches: row.web_searches as number, webFetches: (row.web_fetches as number) ?? 0,
      speed: (row.speed as string | null) ?? null, inferenceGeo: (row.inference_geo as string | null) ?? null,
      serviceTier: (row.service_tier as string | null) ?? null,
    },
    stopReason: (row.stop_reason as string | null) ?? null,
    tools: row.tools ? String(row.tools).split(',') : [],
    clientVersion: (row.client_version as string | null) ?? null,
    sources: (row.sources as number) ?? 0,
    cost: (row.cost as number | null) ?? null,
    ...(row.status != null ? { proxy: proxyFromRow(row) } : {}),
  };
}

function proxyFromRow(row: Row): ProxyDetails {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    endpoint: (row.endpoint as string | null) ?? '',
    modelRequested: (row.model_requested as string | null) ?? null,
    stream: row.stream === 1,
    status: row.status as string,
    errorType: (row.error_type as string | null) ?? null,
    latencyMs: num(row.latency_ms) ?? 0,
    ttftMs: num(row.ttft_ms),
    requestBytes: num(row.request_bytes) ?? 0,
    messageCount: num(row.message_count),
    userAgent: (row.user_agent as string | null) ?? null,
    keyHash: (row.key_hash as string | null) ?? null,
  };
}

function asStoreError(err: unknown, path: string): Error {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: string }).code ?? '';
  const msg = (err as Error).message ?? String(err);
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || /not a database|malformed/i.test(msg)) {
    return new StoreError(`the database ${path} is corrupt (${msg})`,
      `nothing was changed. Move it aside (mv "${path}" "${path}.corrupt") and run \`tokentally sync\` to rebuild it from the transcripts still on disk; ` +
      'records whose transcripts Claude Code has deleted remain only in the old file (sqlite3 .recover can extract them)');
  }
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new StoreError(`the database ${path} is locked by another process (${msg})`, 'retry in a moment');
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code === 'SQLITE_FULL' || code === 'SQLITE_IOERR') {
    return new StoreError(`cannot write the database ${path} (${msg})`, 'check the folder permissions and free disk space, or set TOKENTALLY_HOME');
  }
  return err instanceof Error ? err : new Error(msg);
}
