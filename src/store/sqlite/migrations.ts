/**
 * Ordered schema migrations. The database's `PRAGMA user_version` is the number of migrations applied;
 * opening an older database applies the rest in place, inside one transaction each.
 * Never edit a migration that has shipped: add a new one.
 */
export const MIGRATIONS: string[] = [
  // 1: requests from every source, and per-file import checkpoints.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE files (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ms INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    head TEXT NOT NULL
  );
  CREATE TABLE requests (
    key TEXT PRIMARY KEY,
    request_id TEXT,
    message_id TEXT,
    ts INTEGER NOT NULL,
    session_id TEXT,
    project TEXT,
    agent_id TEXT,
    is_subagent INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    web_searches INTEGER NOT NULL DEFAULT 0,
    web_fetches INTEGER NOT NULL DEFAULT 0,
    speed TEXT,
    inference_geo TEXT,
    service_tier TEXT,
    total_tokens INTEGER NOT NULL,
    cost REAL,
    stop_reason TEXT,
    tools TEXT,
    client_version TEXT,
    sources INTEGER NOT NULL
  );
  CREATE INDEX requests_ts ON requests(ts);
  CREATE INDEX requests_session ON requests(session_id, ts);
  `,
  // 2: look up requests by the upstream request id (proxy records merge with transcript lines through it).
  `
  CREATE INDEX requests_request_id ON requests(request_id) WHERE request_id IS NOT NULL;
  `,
  // 3: what the live proxy sees of a request (NULL for rows only imported from transcripts).
  `
  ALTER TABLE requests ADD COLUMN endpoint TEXT;
  ALTER TABLE requests ADD COLUMN model_requested TEXT;
  ALTER TABLE requests ADD COLUMN stream INTEGER;
  ALTER TABLE requests ADD COLUMN status TEXT;
  ALTER TABLE requests ADD COLUMN error_type TEXT;
  ALTER TABLE requests ADD COLUMN latency_ms INTEGER;
  ALTER TABLE requests ADD COLUMN ttft_ms INTEGER;
  ALTER TABLE requests ADD COLUMN request_bytes INTEGER;
  ALTER TABLE requests ADD COLUMN message_count INTEGER;
  ALTER TABLE requests ADD COLUMN user_agent TEXT;
  ALTER TABLE requests ADD COLUMN key_hash TEXT;
  `,
  // 4: tool calls and their results, and compaction points, for session audits and cost per tool.
  `
  CREATE TABLE tool_calls (
    tool_use_id TEXT PRIMARY KEY,
    request_key TEXT NOT NULL,
    session_id TEXT,
    agent_id TEXT,
    ts INTEGER NOT NULL,
    name TEXT NOT NULL,
    input_chars INTEGER NOT NULL DEFAULT 0,
    target TEXT
  );
  CREATE INDEX tool_calls_session ON tool_calls(session_id, ts);
  CREATE TABLE tool_results (
    tool_use_id TEXT PRIMARY KEY,
    session_id TEXT,
    agent_id TEXT,
    ts INTEGER NOT NULL,
    result_chars INTEGER NOT NULL,
    is_error INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX tool_results_session ON tool_results(session_id, ts);
  CREATE TABLE compactions (
    session_id TEXT NOT NULL,
    agent_id TEXT,
    ts INTEGER NOT NULL,
    trigger TEXT,
    pre_tokens INTEGER,
    PRIMARY KEY (session_id, ts)
  );
  `,
  // 5: budgets, the alerts they fired (once per threshold per period), and routing / downgrade decisions.
  `
  CREATE TABLE budgets (
    name TEXT PRIMARY KEY,
    limit_usd REAL NOT NULL,
    period TEXT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    alerts TEXT NOT NULL,
    webhook TEXT,
    time_zone TEXT NOT NULL,
    week_start INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    budget TEXT NOT NULL,
    budget_version INTEGER NOT NULL,
    period TEXT NOT NULL,
    period_key TEXT NOT NULL,
    threshold REAL NOT NULL,
    spent_usd REAL NOT NULL,
    limit_usd REAL NOT NULL,
    percent REAL NOT NULL,
    resets_at INTEGER,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    delivery TEXT,
    UNIQUE (budget, budget_version, period_key, threshold)
  );
  CREATE INDEX alerts_ts ON alerts(ts);
  CREATE INDEX alerts_pending ON alerts(id) WHERE delivery IS NULL;
  CREATE TABLE route_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model_from TEXT NOT NULL,
    model_to TEXT NOT NULL,
    session_id TEXT,
    request_key TEXT,
    complexity REAL,
    est_input_tokens INTEGER NOT NULL,
    est_cost_from REAL,
    est_cost_to REAL,
    reason TEXT,
    system_fingerprint TEXT,
    cost_actual REAL,
    cost_alternative REAL
  );
  CREATE INDEX route_decisions_ts ON route_decisions(ts);
  `,
  // 6: the quarter hour of each request, the unit of the rollup (migration 8) and of time-range bounds.
  `
  ALTER TABLE requests ADD COLUMN quarter_hour INTEGER AS (ts / 900000) VIRTUAL;
  `,
  // 7: tool facts are read in their own pass (only the commands that need them pay for parsing tool
  // results), so that pass keeps its own per-file positions.
  `
  CREATE TABLE fact_files (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ms INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    lines INTEGER NOT NULL,
    head TEXT NOT NULL
  );
  `,
  // 8: per quarter hour and model sums, so daily reports, budget checks and the statusline read a few thousand
  // rows instead of every request. Inserts are added by the store in one statement per batch (a trigger per
  // row doubled the cost of an import); merges and deletes are applied by these triggers.
  // first_ts/last_ts only widen (a merge that moves a request leaves them as bounds, not exact values).
  `
  CREATE TABLE rollup (
    quarter_hour INTEGER NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    web_searches INTEGER NOT NULL,
    cost REAL NOT NULL,
    unknown_tokens INTEGER NOT NULL,
    unknown_requests INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (quarter_hour, model)
  ) WITHOUT ROWID;
  INSERT INTO rollup SELECT ts / 900000, COALESCE(model, ''), COUNT(*), SUM(input), SUM(output), SUM(cache_write_5m),
    SUM(cache_write_1h), SUM(cache_read), SUM(web_searches), TOTAL(cost),
    SUM(CASE WHEN cost IS NULL THEN total_tokens ELSE 0 END), SUM(CASE WHEN cost IS NULL THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
    FROM requests GROUP BY 1, 2;
  CREATE TRIGGER requests_rollup_delete AFTER DELETE ON requests BEGIN
    UPDATE rollup SET requests = requests - 1, input = input - OLD.input, output = output - OLD.output,
      cache_write_5m = cache_write_5m - OLD.cache_write_5m, cache_write_1h = cache_write_1h - OLD.cache_write_1h,
      cache_read = cache_read - OLD.cache_read, web_searches = web_searches - OLD.web_searches, cost = cost - COALESCE(OLD.cost, 0),
      unknown_tokens = unknown_tokens - CASE WHEN OLD.cost IS NULL THEN OLD.total_tokens ELSE 0 END,
      unknown_requests = unknown_requests - CASE WHEN OLD.cost IS NULL THEN 1 ELSE 0 END
    WHERE quarter_hour = OLD.ts / 900000 AND model = COALESCE(OLD.model, '');
  END;
  CREATE TRIGGER requests_rollup_update AFTER UPDATE OF ts, model, input, output, cache_write_5m, cache_write_1h, cache_read,
    web_searches, cost, total_tokens ON requests BEGIN
    UPDATE rollup SET requests = requests - 1, input = input - OLD.input, output = output - OLD.output,
      cache_write_5m = cache_write_5m - OLD.cache_write_5m, cache_write_1h = cache_write_1h - OLD.cache_write_1h,
      cache_read = cache_read - OLD.cache_read, web_searches = web_searches - OLD.web_searches, cost = cost - COALESCE(OLD.cost, 0),
      unknown_tokens = unknown_tokens - CASE WHEN OLD.cost IS NULL THEN OLD.total_tokens ELSE 0 END,
      unknown_requests = unknown_requests - CASE WHEN OLD.cost IS NULL THEN 1 ELSE 0 END
    WHERE quarter_hour = OLD.ts / 900000 AND model = COALESCE(OLD.model, '');
    INSERT INTO rollup VALUES (NEW.ts / 900000, COALESCE(NEW.model, ''), 1, NEW.input, NEW.output, NEW.cache_write_5m, NEW.cache_write_1h,
      NEW.cache_read, NEW.web_searches, COALESCE(NEW.cost, 0), CASE WHEN NEW.cost IS NULL THEN NEW.total_tokens ELSE 0 END,
      CASE WHEN NEW.cost IS NULL THEN 1 ELSE 0 END, NEW.ts, NEW.ts)
    ON CONFLICT(quarter_hour, model) DO UPDATE SET requests = requests + excluded.requests, input = input + excluded.input, output = output + excluded.output, cache_write_5m = cache_write_5m + excluded.cache_write_5m, cache_write_1h = cache_write_1h + excluded.cache_write_1h, cache_read = cache_read + excluded.cache_read, web_searches = web_searches + excluded.web_searches, cost = cost + excluded.cost, unknown_tokens = unknown_tokens + excluded.unknown_tokens, unknown_requests = unknown_requests + excluded.unknown_requests,
      first_ts = MIN(first_ts, excluded.first_ts), last_ts = MAX(last_ts, excluded.last_ts);
  END;
  `,
];
