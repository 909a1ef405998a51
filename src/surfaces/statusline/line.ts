/** The statusline's figures and the one line printed from them (no store, no price book: every path shares it). */
import { compact, duration, usd, usdWithUnknown } from './text.js';

export interface StatuslineData {
  model: string | null;
  session: { id: string; cost: number; unknownCostTokens: number; requests: number; ccCost: number | null } | null;
  today: { date: string; cost: number; unknownCostTokens: number; requests: number };
  block: {
    start: number; end: number; cost: number; unknownCostTokens: number; remainingMs: number;
    costPerHour: number | null; projectedCost: number | null;
    /** First and last request of the block (for the store-free path, fast.ts); not printed. */
    firstTs?: number | null; lastTs?: number | null;
  } | null;
  context: { tokens: number; size: number | null; percent: number | null } | null;
  /** Set when the transcript could not be imported (the figures are from what was stored before). */
  syncError: string | null;
}

/** Claude Code's estimate is shown beside ours when they differ by more than a cent and 5 %. */
function differs(ours: number, theirs: number): boolean {
  const diff = Math.abs(ours - theirs);
  return diff >= 0.01 && diff > 0.05 * Math.max(ours, theirs);
}

export function formatStatusline(d: StatuslineData): string {
  const parts: string[] = [];
  // "Opus 4.8 (1M context)" -> "Opus 4.8"; a bare id (no display_name) loses its "claude-" prefix.
  if (d.model) parts.push(d.model.replace(/^Claude /, '').replace(/^claude-/, '').replace(/\s*\([^)]*\)$|\[[^\]]*\]$/, ''));
  if (d.session) {
    let s = `${usdWithUnknown(d.session.cost, d.session.unknownCostTokens)} session`;
    if (d.session.ccCost !== null && (d.session.unknownCostTokens > 0 || differs(d.session.cost, d.session.ccCost))) {
      s += ` (CC ${usd(d.session.ccCost)})`;
    }
    parts.push(s);
  }
  parts.push(`${usdWithUnknown(d.today.cost, d.today.unknownCostTokens)} today`);
  parts.push(d.block
    ? `${usdWithUnknown(d.block.cost, d.block.unknownCostTokens)} block, ${duration(d.block.remainingMs)} left`
    : 'no active block');
  if (d.context) {
    const pct = d.context.percent !== null ? ` ${Math.round(d.context.percent)}%` : '';
    parts.push(`ctx ${compact(d.context.tokens)}${pct}`);
  }
  return parts.join(' | ');
}
