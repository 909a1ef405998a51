/**
 * Formatting without dependencies, for the statusline hot path (format.ts loads cli-table3 and picocolors)
 * and the live view.
 */

/** `$1,234.56` (`$0.004` under a cent). No Intl: creating a number format costs the statusline ~5 ms. */
export function usd(n: number): string {
  if (n !== 0 && Math.abs(n) < 0.01) return `${n < 0 ? '-' : ''}$${Math.abs(n).toFixed(3)}`;
  const [int, frac] = Math.abs(n).toFixed(2).split('.');
  return `${n < 0 && Number(`${int}.${frac}`) !== 0 ? '-' : ''}$${int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${frac}`;
}

/** A known cost plus unpriced tokens: `$1.20+?`, or `unknown` — never a bare $0. */
export function usdWithUnknown(cost: number, unknownTokens: number): string {
  if (unknownTokens > 0) return cost > 0 ? `${usd(cost)}+?` : 'unknown';
  return usd(cost);
}

/** 1234 -> 1.2K, 5_449_535 -> 5.4M. */
export function compact(n: number): string {
  const abs = Math.abs(n);
  for (const [v, s] of [[1e9, 'B'], [1e6, 'M'], [1e3, 'K']] as const) {
    if (abs >= v) {
      const x = n / v;
      return `${x >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, '')}${s}`;
    }
  }
  return String(Math.round(n));
}

/** 7_980_000 ms -> `2h13m`; 45 min -> `45m`; under a minute -> `<1m`. */
export function duration(ms: number): string {
  const min = Math.floor(Math.max(0, ms) / 60_000);
  if (min < 1) return '<1m';
  const h = Math.floor(min / 60);
  const m = min % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m`;
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();

/** `2026-11-20 10:00` in a time zone. */
export function localDateTime(ts: number, timeZone: string): string {
  let f = timeFormats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    timeFormats.set(timeZone, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ts)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** `10:00` in a time zone. */
export function localTime(ts: number, timeZone: string): string {
  return localDateTime(ts, timeZone).slice(11);
}
