/**
 * The proxy's policy runtime: a PolicyGate (src/policy/gate.ts) kept up to date, plus what the proxy needs
 * around it. It never touches SQLite itself: every read and write goes through `store`, in the proxy the
 * store worker's client (WorkerRecorder.policyStore), so the event loop that forwards traffic never waits on
 * a database lock.
 *
 * - `idle` (no budgets, no routing rules): the proxy does nothing extra per request, not even parse bodies.
 * - Budgets and their spend are re-read every `refreshMs` (other processes run `budget set`, other sources add
 *   spend); routes.json is re-read when it changes (watched, and its stat checked on every refresh). An invalid
 *   routes.json is reported (naming the field) and the previous rules stay in force.
 * - `project:` budgets: proxy requests carry no working directory, so the project of a request is its
 *   session's project as the store knows it from the imported transcript (cached per session id; unknown until
 *   the transcript of that session has been imported by any command, the statusline or the hook).
 * - Settling (`after`) runs after the record is built, off the request path; alert lines go to `log`, and
 *   alerts are delivered (webhook, desktop) by `deliver` without anyone waiting.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { PriceBook } from '../../core/pricing/pricebook.js';
import type { Usage } from '../../core/types.js';
import type { AlertRecord } from '../../policy/alerts.js';
import type { BudgetDefinition } from '../../policy/budgets.js';
import { PolicyGate, type GateRequest, type GateResult, type GateStore, type GateTicket } from '../../policy/gate.js';
import type { RoutingConfig } from '../../policy/routing.js';
import type { Store } from '../../store/store.js';

export type ProxyPolicyStore = GateStore & Pick<Store, 'summarize'>;

export interface ProxyPolicyOptions {
  store: ProxyPolicyStore;
  prices: PriceBook;
  /** Read and validate routes.json (an absent file = no rules); throws with a message naming the field. */
  loadRouting: () => RoutingConfig;
  /** routes.json, watched for changes. */
  routesPath?: string;
  /** How often budgets and spend are re-read (default 5 s). 0: only on `refresh()`. */
  refreshMs?: number;
  /** How long an unknown session project is remembered before asking the store again (default 30 s). */
  projectRetryMs?: number;
  /** Alert lines (`alert: ...`) and reload notes, for the proxy's log. */
  log?: (line: string) => void;
  problem?: (message: string) => void;
  /** Webhook/desktop delivery of new alerts (notify.ts deliverAlerts); not awaited by anyone. */
  deliver?: (alerts: AlertRecord[], budgets: readonly BudgetDefinition[]) => Promise<unknown>;
  now?: () => number;
}

/** What the proxy tells the policy about a finished exchange. */
export interface SettleInfo {
  /** The model that answered (else the one sent). */
  model: string | null;
  ts: number;
  /** Usage of the answer; null when no usage was seen (failed before any, or not an answer): releases the reservation. */
  usage: Usage | null;
  requestKey: string | null;
}

export class ProxyPolicy {
  readonly gate: PolicyGate;
  private readonly opts: ProxyPolicyOptions;
  private routesSig: string | null = null;
  private refreshing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private readonly pending = new Set<Promise<void>>();
  private readonly projects = new Map<string, { project: string | null; at: number }>();
  private projectScopes = false;
  private closed = false;

  private constructor(opts: ProxyPolicyOptions, gate: PolicyGate) {
    this.opts = opts;
    this.gate = gate;
    this.noteBudgets();
  }

  /** Load budgets (from the store) and routes.json (throws when it is invalid: the proxy refuses to start). */
  static async start(opts: ProxyPolicyOptions): Promise<ProxyPolicy> {
    const routing = opts.loadRouting();
    // A store that cannot answer now (locked, being upgraded) does not stop the proxy: budgets load on a refresh.
    const budgets = await opts.store.listBudgets().catch((err: Error) => {
      opts.problem?.(`reading budgets: ${err.message}; retrying on the next refresh`);
      return [] as BudgetDefinition[];
    });
    let self: ProxyPolicy | null = null;
    const gate = new PolicyGate({
      store: opts.store, prices: opts.prices, budgets, routing, now: opts.now,
      deliver: opts.deliver ? (alerts) => opts.deliver!(alerts, self?.gate.ledger.definitions ?? budgets) : undefined,
    });
    self = new ProxyPolicy(opts, gate);
    self.routesSig = await self.routesSignature();
    const every = opts.refreshMs ?? 5000;
    if (every > 0) {
      self.timer = setInterval(() => void self!.refresh(), every);
      self.timer.unref();
    }
    if (opts.routesPath) {
      try {
        const file = basename(opts.routesPath);
        self.watcher = watch(dirname(opts.routesPath), { persistent: false }, (_ev, name) => {
          if (name !== null && String(name) !== file) return;
          if (self!.debounce) clearTimeout(self!.debounce);
          self!.debounce = setTimeout(() => void self!.refresh(), 50);
          self!.debounce.unref();
        });
        self.watcher.on('error', () => undefined);
      } catch { /* no directory yet, or no watch support: the periodic stat check covers it */ }
    }
    return self;
  }

  /** No budgets and no rules: nothing to do for any request. */
  get idle(): boolean {
    return this.gate.idle;
  }

  /** Some budget is scoped to a project: the request's session project must be looked up. */
  get needsProject(): boolean {
    return this.projectScopes;
  }

  get prices(): PriceBook {
    return this.opts.prices;
  }

  before(req: GateRequest): Promise<GateResult> {
    return this.gate.before(req);
  }

  /** No request can be refused or rewritten now (PolicyGate.clearForAny): it may be forwarded before it is read. */
  clearForAny(): boolean {
    return this.gate.clearForAny();
  }

  /** Reserve for a request forwarded while `clearForAny()` held, in the same synchronous step. */
  beforeForwarded(req: GateRequest): GateResult {
    return this.gate.beforeForwarded(req);
  }

  /** Settle a forwarded request (never throws; the proxy does not wait for it). */
  after(ticket: GateTicket, info: SettleInfo | null): void {
    let costUsd: number | null = null;
    if (info?.usage && info.model) costUsd = this.opts.prices.price(info.model, info.ts, info.usage).cost;
    const p = this.gate.after(ticket, { costUsd, usage: info?.usage ?? null, requestKey: info?.requestKey ?? null })
      .then((lines) => {
        for (const l of lines) this.log(l);
      })
      .catch((err: Error) => this.problem(`settling a request's budget: ${err.message}`))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves once every settle started so far is done (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** The session's project as the store knows it (transcripts), cached; null when unknown. */
  async projectOf(sessionId: string): Promise<string | null> {
    const now = Date.now();
    const hit = this.projects.get(sessionId);
    if (hit && (hit.project !== null || now - hit.at < (this.opts.projectRetryMs ?? 30_000))) return hit.project;
    let project: string | null = null;
    try {
      const groups = await this.opts.store.summarize({ sessionId }, ['project']);
      const best = groups.filter((g) => g.project).sort((a, b) => b.requests - a.requests)[0];
      project = best?.project ?? null;
    } catch (err) {
      this.problem(`looking up the project of a session: ${(err as Error).message}`);
    }
    if (this.projects.size >= 10_000) this.projects.clear();
    this.projects.set(sessionId, { project, at: now });
    return project;
  }

  /** Re-read budgets, spend and (when it changed) routes.json. Concurrent calls share one refresh. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    this.watcher?.close();
    this.timer = null;
    this.watcher = null;
  }

  private async doRefresh(): Promise<void> {
    let routing: RoutingConfig | undefined;
    const sig = await this.routesSignature();
    if (sig !== this.routesSig) {
      try {
        routing = this.opts.loadRouting();
        this.routesSig = sig;
        this.log(`routes reloaded: ${routing.rules.length} rule(s)${routing.dryRun ? ', dry-run mode' : ''}`);
      } catch (err) {
        // Keep the rules in force; say so once per version of the file.
        this.routesSig = sig;
        this.problem(`routing rules not reloaded, the previous ones stay in force: ${(err as Error).message}`);
      }
    }
    try {
      await this.gate.refresh(routing);
      this.noteBudgets();
    } catch (err) {
      if (routing) this.gate.setRouting(routing);
      this.problem(`refreshing budgets: ${(err as Error).message}`);
    }
  }

  private noteBudgets(): void {
    this.projectScopes = this.gate.ledger.definitions.some((b) => b.scope.startsWith('project:'));
  }

  private async routesSignature(): Promise<string | null> {
    if (!this.opts.routesPath) return null;
    try {
      const s = await stat(this.opts.routesPath);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'absent';
    }
  }

  private log(line: string): void {
    try {
      this.opts.log?.(line);
    } catch { /* logging never breaks traffic */ }
  }

  private problem(message: string): void {
    try {
      this.opts.problem?.(message);
    } catch { /* diagnostics never break traffic */ }
  }
}
