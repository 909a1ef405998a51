/**
 * Alert delivery: a webhook POST (JSON with a Slack-compatible `text` field) retried with bounded backoff,
 * and a desktop notification where the platform has one (`notify-send` on Linux, `osascript` on macOS),
 * silently skipped otherwise. Each delivery outcome is written back to the alert (`tokentally alerts`).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { webhookPayload, type AlertRecord, type WebhookPayload } from '../policy/alerts.js';
import type { BudgetDefinition } from '../policy/budgets.js';
import type { Store } from '../store/store.js';

export interface WebhookOptions {
  /** Attempts in all (default 4: the first try and 3 retries). */
  attempts?: number;
  /** Delay before retry n is baseDelayMs x 2^(n-1), at most maxDelayMs (defaults 250 ms and 4 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per attempt (default 5 s). */
  timeoutMs?: number;
}

export interface WebhookResult {
  ok: boolean;
  attempts: number;
  status: number | null;
  error: string | null;
}

/**
 * POST the payload as JSON. Retries network errors, timeouts, 408, 429 and 5xx; any other status is final.
 * Bounded: at most `attempts` tries and a few seconds of waiting in all.
 */
export async function postWebhook(url: string, payload: WebhookPayload | Record<string, unknown>, opts: WebhookOptions = {}): Promise<WebhookResult> {
  const attempts = Math.max(1, opts.attempts ?? 4);
  const base = opts.baseDelayMs ?? 250;
  const maxDelay = opts.maxDelayMs ?? 4000;
  const body = JSON.stringify(payload);
  let last: WebhookResult = { ok: false, attempts: 0, status: null, error: null };
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, {
        method: 'POST', body, headers: { 'content-type': 'application/json', 'user-agent': 'tokentally' },
        signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { ok: true, attempts: i, status: res.status, error: null };
      last = { ok: false, attempts: i, status: res.status, error: `HTTP ${res.status}` };
      if (!(res.status === 408 || res.status === 429 || res.status >= 500)) return last;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; errors?: { code?: string }[]; message?: string } };
      const code = e.cause?.code ?? e.cause?.errors?.find((x) => x.code)?.code ?? (e.name === 'TimeoutError' ? 'timeout' : e.cause?.message ?? e.message);
      last = { ok: false, attempts: i, status: null, error: code ?? 'error' };
    }
    if (i < attempts) await sleep(Math.min(maxDelay, base * 2 ** (i - 1)));
  }
  return last;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function onPath(cmd: string, env: NodeJS.ProcessEnv): boolean {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

/**
 * Show a desktop notification without waiting for it. Returns the tool used, or `skipped` (no tool, no
 * graphical session, or TOKENTALLY_DESKTOP_NOTIFY=0).
 */
export function desktopNotify(title: string, body: string, env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.TOKENTALLY_DESKTOP_NOTIFY === '0') return 'skipped';
  let cmd: string;
  let args: string[];
  if (platform === 'linux') {
    if (!env.DISPLAY && !env.WAYLAND_DISPLAY && !env.DBUS_SESSION_BUS_ADDRESS) return 'skipped';
    if (!onPath('notify-send', env)) return 'skipped';
    cmd = 'notify-send';
    args = ['--app-name=tokentally', title, body];
  } else if (platform === 'darwin') {
    if (!onPath('osascript', env)) return 'skipped';
    const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    cmd = 'osascript';
    args = ['-e', `display notification ${q(body)} with title ${q(title)}`];
  } else {
    return 'skipped';
  }
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true, env });
    child.on('error', () => undefined);
    child.unref();
    return cmd;
  } catch {
    return 'skipped';
  }
}

export interface DeliverOptions {
  webhook?: WebhookOptions;
  env?: NodeJS.ProcessEnv;
  /** Default true. */
  desktop?: boolean;
}

/**
 * Deliver alerts and record the outcome on each. Several thresholds of one budget crossed at once are sent as
 * one message (the highest); the others are marked `superseded`.
 */
export async function deliverAlerts(store: Store, alerts: AlertRecord[], budgets: BudgetDefinition[], opts: DeliverOptions = {}): Promise<{ id: number; delivery: string }[]> {
  const byBudget = new Map<string, AlertRecord[]>();
  for (const a of alerts) {
    if (a.id === undefined) continue;
    const k = `${a.budget}\u0000${a.periodKey}`;
    byBudget.set(k, [...(byBudget.get(k) ?? []), a]);
  }
  const out: { id: number; delivery: string }[] = [];
  await Promise.all([...byBudget.values()].map(async (group) => {
    group.sort((x, y) => y.threshold - x.threshold);
    const [top, ...rest] = group;
    const budget = budgets.find((b) => b.name === top.budget);
    const parts: string[] = [];
    if (budget?.webhook) {
      const r = await postWebhook(budget.webhook, webhookPayload(top), opts.webhook);
      parts.push(r.ok ? `webhook:ok(${r.attempts})` : `webhook:failed(${r.attempts} attempts, ${r.error})`);
    }
    if (opts.desktop !== false) parts.push(`desktop:${desktopNotify(`tokentally: budget ${top.budget} at ${top.threshold}%`, top.message, opts.env)}`);
    const delivery = parts.length ? parts.join(' ') : 'none';
    await store.markAlertDelivered(top.id!, delivery);
    out.push({ id: top.id!, delivery });
    for (const a of rest) {
      const d = `superseded by ${top.threshold}%`;
      await store.markAlertDelivered(a.id!, d);
      out.push({ id: a.id!, delivery: d });
    }
  }));
  return out;
}
