/**
 * PolicyGate: everything the proxy does per request for budgets and routing, behind two calls.
 *
 *   const gate = new PolicyGate({ store, prices, budgets: await store.listBudgets(), routing });
 *   const g = await gate.before({ method, path, headers, body, keyHash, sessionId, project });
 *   if (g.kind === 'respond') -> send g.response (429 billing_error), forward nothing
 *   else -> forward g.body (maybe rewritten) with g.addHeaders on the response; then, once usage is known:
 *   const lines = await gate.after(g.ticket, { usage, model, requestKey, costUsd });   // log lines (alerts)
 *
 * Only `POST /v1/messages` is billable: count_tokens, models, probes are never blocked or rewritten.
 * Concurrency: `before()` awaits the store only to load baselines, then decides and reserves synchronously
 * (BudgetLedger.admit), so concurrent requests cannot both take the last dollar.
 */
import type { PriceBook } from '../core/pricing/pricebook.js';
import type { Usage } from '../core/types.js';
import type { Store } from '../store/store.js';
import type { AlertRecord } from './alerts.js';
import type { BudgetDefinition, RequestContext } from './budgets.js';
import { planDowngrade } from './downgrade.js';
import { prepareLedger, recordAlerts, refreshLedger } from './evaluate.js';
import { requestFeatures, type RequestFeatures } from './features.js';
import { BudgetLedger, estimateRequestCostUsd, type Admission, type ReservationToken } from './reservations.js';
import { billingErrorResponse, rewriteHeader, warningHeader, type PolicyResponse } from './responses.js';
import { decideRoute, rewriteModel, settleDecision, type RouteDecision, type RoutingConfig } from './routing.js';

export interface GateRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body already parsed by the caller, if it was (saves a second JSON.parse of a large body). */
  doc?: unknown;
  keyHash: string | null;
  sessionId: string | null;
  project: string | null;
}

export interface GateTicket {
  token: ReservationToken | null;
  admission: Admission | null;
  /**
   * Route or downgrade decisions taken for this request: being stored (the request does not wait for the
   * write; `after` awaits the id to settle them).
   */
  decisions: { id: Promise<number | null>; decision: RouteDecision }[];
  modelRequested: string | null;
  modelSent: string | null;
}

export type GateResult =
  | { kind: 'respond'; response: PolicyResponse; admission: Admission }
  | { kind: 'forward'; body: Buffer; addHeaders: Record<string, string>; ticket: GateTicket };

/** What the gate reads and writes: a Store, or the proxy's client of its store worker. */
export type GateStore = Pick<Store, 'listBudgets' | 'sumSpend' | 'listRequestTimes' | 'listAlerts' | 'recordAlert'
  | 'recordRouteDecision' | 'updateRouteDecision'>;

export interface GateOptions {
  store: GateStore;
  prices: PriceBook;
  budgets: BudgetDefinition[];
  routing: RoutingConfig;
  now?: () => number;
  /** Alert delivery (webhook, desktop), e.g. notify.ts deliverAlerts; called without awaiting the response. */
  deliver?: (alerts: AlertRecord[]) => Promise<unknown>;
}

/** Requests that cost money: POST /v1/messages (count_tokens and everything else pass untouched). */
export function isBillable(method: string, path: string): boolean {
  return method.toUpperCase() === 'POST' && path.replace(/\/+$/, '') === '/v1/messages';
}

function passThrough(body: Buffer): GateResult {
  return { kind: 'forward', body, addHeaders: {}, ticket: { token: null, admission: null, decisions: [], modelRequested: null, modelSent: null } };
}

export class PolicyGate {
  readonly ledger: BudgetLedger;
  private routing: RoutingConfig;
  private readonly store: GateStore;
  private readonly prices: PriceBook;
  private readonly now: () => number;
  private readonly deliver?: (alerts: AlertRecord[]) => Promise<unknown>;

  constructor(opts: GateOptions) {
    this.store = opts.store;
    this.prices = opts.prices;
    this.now = opts.now ?? Date.now;
    this.routing = opts.routing;
    this.deliver = opts.deliver;
    this.ledger = new BudgetLedger(opts.budgets, { prices: opts.prices, now: this.now });
  }

  /** Nothing to do for any request: no budgets, no rules (the proxy can skip parsing bodies). */
  get idle(): boolean {
    return this.ledger.definitions.length === 0 && this.routing.rules.length === 0;
  }

  setBudgets(budgets: BudgetDefinition[]): void {
    this.ledger.setBudgets(budgets);
  }

  setRouting(routing: RoutingConfig): void {
    this.routing = routing;
  }

  /**
   * Re-read the budget definitions (`tokentally budget set/rm` from another process) and their spend (other
   * sources add spend too). Call every few seconds; pass the routing config too when routes.json changed.
   */
  async refresh(routing?: RoutingConfig): Promise<void> {
    this.ledger.setBudgets(await this.store.listBudgets());
    if (routing) this.routing = routing;
    await refreshLedger(this.ledger, this.store, this.now());
  }

  async before(req: GateRequest): Promise<GateResult> {
    const parsed = this.parse(req);
    if (parsed === null) return passThrough(req.body);
    const { doc, ctx } = parsed;
    const now = this.now();
    if (this.ledger.needsRecentTimes() || this.ledger.baselineNeeds(ctx).length > 0) await prepareLedger(this.ledger, this.store, ctx, now);
    return this.decide(req, doc, ctx, now);
  }

  /**
   * True when no request can be answered, rewritten or marked now, whatever its body says: no routing rules, and
   * every budget has one current period slot (none per session or per project, whose slot or scope depends on the
   * request), loaded from the store and not exhausted. The proxy then forwards a request before reading it and
   * calls `beforeForwarded` in the same synchronous step, so its reservation is still made before any other
   * request is admitted.
   */
  clearForAny(): boolean {
    return this.routing.rules.length === 0 && this.ledger.clearForAny();
  }

  /** `before` for a request forwarded while `clearForAny()` held (same synchronous step): reserves, never refuses. */
  beforeForwarded(req: GateRequest): GateResult {
    const parsed = this.parse(req);
    if (parsed === null) return passThrough(req.body);
    return this.decide(req, parsed.doc, parsed.ctx, this.now());
  }

  /** The request's JSON body and budget context; null when it is not budgeted (not billable, not a JSON object). */
  private parse(req: GateRequest): { doc: Record<string, unknown>; ctx: RequestContext } | null {
    if (this.idle || !isBillable(req.method, req.path)) return null;
    let doc: Record<string, unknown> | null = null;
    try {
      const parsed = req.doc !== undefined ? req.doc : JSON.parse(req.body.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) doc = parsed as Record<string, unknown>;
    } catch {
      // not JSON: the API will refuse it; nothing to budget
    }
    if (!doc) return null;
    const model = typeof doc.model === 'string' && doc.model ? doc.model : null;
    return { doc, ctx: { sessionId: req.sessionId, project: req.project, model, keyHash: req.keyHash } };
  }

  /** Decide and reserve: synchronous, every baseline the request touches loaded. */
  private decide(req: GateRequest, doc: Record<string, unknown>, ctx: RequestContext, now: number): GateResult {
    // Budgets need only the model and max_tokens; the full features (system prompt hash, word counts...) are
    // computed when a routing rule or a downgrade looks at them.
    const requested = ctx.model;
    const maxTokens = typeof doc.max_tokens === 'number' && Number.isFinite(doc.max_tokens) ? doc.max_tokens : null;
    let features: RequestFeatures | null = null;
    const f = (): RequestFeatures => (features ??= requestFeatures(doc, req.body.length, req.headers));
    const admission = this.ledger.admit(ctx, estimateRequestCostUsd(this.prices, requested, req.body.length, maxTokens, now));
    if (admission.decision === 'block') {
      return { kind: 'respond', response: billingErrorResponse(admission.deciding!, now), admission };
    }
    const addHeaders: Record<string, string> = {};
    const decisions: RouteDecision[] = [];
    let model = requested;
    if (admission.decision === 'warn' && admission.deciding) {
      const [k, v] = warningHeader(admission.deciding);
      addHeaders[k] = v;
    }
    if (admission.decision === 'downgrade' && admission.deciding && requested) {
      const d = planDowngrade(this.prices, f(), this.routing.ladder, now);
      const b = admission.deciding.budget;
      if (d.plan) {
        model = d.plan.to;
        decisions.push(this.downgradeDecision(b.name, f(), d.plan.to, 'routed', null, req.sessionId, now));
        const [k, v] = rewriteHeader(requested, d.plan.to, `budget "${b.name}"`);
        addHeaders[k] = v;
      } else {
        // Nothing cheaper can take this request: let it through, say so.
        const reason = d.skipped.length ? d.skipped.map((s) => s.reason).join('; ') : 'no cheaper model on the ladder';
        decisions.push(this.downgradeDecision(b.name, f(), d.skipped[0]?.model ?? requested, 'refused', reason, req.sessionId, now));
        const [k, v] = warningHeader(admission.deciding);
        addHeaders[k] = `${v}; not downgraded: ${reason}`;
      }
    }
    if (model === requested && requested && this.routing.rules.length > 0) {
      const route = decideRoute(this.routing, f(), this.prices, now, req.sessionId);
      if (route) {
        decisions.push(route);
        if (route.outcome === 'routed') {
          model = route.modelTo;
          const [k, v] = rewriteHeader(route.modelFrom, route.modelTo, `rule "${route.rule}"`);
          addHeaders[k] = v;
        }
      }
    }
    let body = req.body;
    if (model !== requested && model) {
      body = rewriteModel(doc, model);
      if (admission.token) this.ledger.adjust(admission.token, estimateRequestCostUsd(this.prices, model, body.length, maxTokens, now) ?? 0);
    }
    const stored: GateTicket['decisions'] = [];
    for (const d of decisions) {
      // Not awaited here: the request is forwarded while the decision is written (a failed write loses the row only).
      const id = this.store.recordRouteDecision(d).catch(() => null);
      stored.push({ id, decision: d });
    }
    return { kind: 'forward', body, addHeaders, ticket: { token: admission.token, admission, decisions: stored, modelRequested: requested, modelSent: model } };
  }

  /**
   * Settle a forwarded request: `costUsd` is what it cost (PriceBook.price of the answer; null when unknown or
   * failed before any usage). Records the routing decisions' actual costs and any alerts; returns one log
   * line per new alert.
   */
  async after(ticket: GateTicket, result: { costUsd: number | null; usage?: Usage | null; requestKey?: string | null }): Promise<string[]> {
    const lines: string[] = [];
    if (ticket.token) {
      const due = this.ledger.settle(ticket.token, result.costUsd, 'proxy');
      const fired = due.length ? await recordAlerts(this.store, due) : [];
      for (const a of fired) lines.push(`alert: ${a.message}`);
      if (fired.length && this.deliver) void this.deliver(fired).catch(() => undefined);
    }
    if (result.usage) {
      for (const { id, decision } of ticket.decisions) {
        if (decision.outcome === 'refused') continue;
        const s = settleDecision(decision, result.usage, this.prices, result.requestKey ?? null);
        const rowId = await id;
        if (rowId === null) continue;
        await this.store.updateRouteDecision(rowId, { requestKey: s.requestKey, costActual: s.costActual, costAlternative: s.costAlternative });
      }
    }
    return lines;
  }

  private downgradeDecision(budget: string, f: RequestFeatures, to: string, outcome: 'routed' | 'refused', reason: string | null,
    sessionId: string | null, now: number): RouteDecision {
    return {
      ts: now, kind: 'downgrade', rule: budget, outcome, modelFrom: f.model!, modelTo: to, sessionId, requestKey: null, complexity: null,
      estInputTokens: f.estInputTokens,
      estCostFrom: estimateRequestCostUsd(this.prices, f.model, f.bodyBytes, f.maxTokens, now),
      estCostTo: estimateRequestCostUsd(this.prices, to, f.bodyBytes, f.maxTokens, now),
      reason, systemFingerprint: f.systemFingerprint, costActual: null, costAlternative: null,
    };
  }
}
