/** Calendar arithmetic in an IANA time zone, without I/O. */

export class TimeZoneError extends Error {}

export function systemTimeZone(): string {
  return process.env.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

const UTC_NAMES = new Set(['UTC', 'Etc/UTC', 'GMT', 'Etc/GMT', 'UCT', 'Etc/UCT', 'Zulu', 'Etc/Zulu', 'Universal', 'Etc/Universal']);

/** UTC needs no time zone data: answering it without Intl saves the ~20 ms ICU takes to load zone data. */
function isUtc(tz: string): boolean {
  return UTC_NAMES.has(tz);
}

export function assertTimeZone(tz: string): string {
  if (isUtc(tz)) return tz;
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: tz });
    return tz;
  } catch {
    throw new TimeZoneError(`unknown time zone "${tz}" (use an IANA name such as UTC, Europe/Paris, America/New_York)`);
  }
}

const QUARTER_HOUR = 15 * 60 * 1000;
const SIX_HOURS = 6 * 3600 * 1000;

/**
 * Maps instants to local calendar dates. Every zone offset in use is a multiple of 15 minutes,
 * so one lookup per quarter hour is exact and lets reports bucket pre-aggregated rows.
 */
export class LocalCalendar {
  private fmtCache?: Intl.DateTimeFormat;
  private readonly cache = new Map<number, string>();
  /** The zone is UTC, or the process's own (TZ): offsets come from Date without loading Intl's zone data. */
  private readonly offsetFromDate: boolean;

  constructor(readonly timeZone: string) {
    this.offsetFromDate = isUtc(timeZone) || process.env.TZ === timeZone;
  }

  private get fmt(): Intl.DateTimeFormat {
    return this.fmtCache ??= new Intl.DateTimeFormat('en-CA', { timeZone: this.timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  }

  /** YYYY-MM-DD of the instant in this zone. */
  date(ts: number): string {
    const q = Math.floor(ts / QUARTER_HOUR);
    let d = this.cache.get(q);
    if (d === undefined) {
      // Asking Intl once per quarter hour is slow for long histories: use the zone's UTC offset, looked up
      // once per 6-hour block, and Intl only for a block in which the offset changes (a DST switch).
      const offset = this.blockOffset(q * QUARTER_HOUR);
      d = offset === undefined ? this.fmt.format(new Date(q * QUARTER_HOUR)) : new Date(q * QUARTER_HOUR + offset).toISOString().slice(0, 10);
      this.cache.set(q, d);
    }
    return d;
  }

  private readonly offsets = new Map<number, number | undefined>();
  private partsFmt?: Intl.DateTimeFormat;

  /** The zone's offset (ms) throughout the 6-hour UTC block holding `ts`, or undefined when it changes inside it. */
  private blockOffset(ts: number): number | undefined {
    const block = Math.floor(ts / SIX_HOURS);
    if (this.offsets.has(block)) return this.offsets.get(block);
    const start = this.offsetAt(block * SIX_HOURS);
    const end = this.offsetAt((block + 1) * SIX_HOURS - 1);
    const offset = start === end ? start : undefined;
    this.offsets.set(block, offset);
    return offset;
  }

  /**
   * The zone's UTC offsets from `fromTs` to `toTs`, as changes at quarter-hour boundaries: checked day by day,
   * with each change located to its quarter hour by bisection (offsets change at most a few times a year).
   */
  offsetChanges(fromTs: number, toTs: number): { fromQ: number; offsetQ: number }[] {
    const Q = QUARTER_HOUR;
    const offQ = (q: number) => Math.round(this.offsetAt(q * Q) / Q);
    let q = Math.floor(fromTs / Q);
    const lastQ = Math.max(q, Math.ceil(toTs / Q));
    const changes = [{ fromQ: q, offsetQ: offQ(q) }];
    if (isUtc(this.timeZone)) return changes;
    for (let next = q + 96; q < lastQ; q = next, next += 96) {
      const end = Math.min(next, lastQ);
      let current = changes[changes.length - 1].offsetQ;
      while (offQ(end) !== current) {
        // Bisect for the first quarter hour in (q, end] with another offset.
        let lo = q;
        let hi = end;
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (offQ(mid) === current) lo = mid;
          else hi = mid;
        }
        current = offQ(hi);
        changes.push({ fromQ: hi, offsetQ: current });
        q = hi;
      }
    }
    return changes;
  }

  private offsetAt(ts: number): number {
    if (isUtc(this.timeZone)) return 0;
    if (this.offsetFromDate) return -new Date(ts).getTimezoneOffset() * 60_000;
    this.partsFmt ??= new Intl.DateTimeFormat('en-US', {
      timeZone: this.timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    const p = this.partsFmt.formatToParts(new Date(ts));
    const n = (type: string) => Number(part(p, type));
    const local = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
    return Math.round((local - Math.floor(ts / 1000) * 1000) / 60_000) * 60_000;
  }

  month(ts: number): string {
    return this.date(ts).slice(0, 7);
  }

  /** Date of the first day of the week holding `ts`; weekStart 0 = Sunday, 1 = Monday. */
  week(ts: number, weekStart: number): string {
    return weekStartOf(this.date(ts), weekStart);
  }

  /** Epoch ms of local midnight starting `date` (YYYY-MM-DD). */
  startOfDay(date: string): number {
    if (isUtc(this.timeZone)) return Date.parse(`${date}T00:00:00Z`);
    // Start from UTC midnight and correct by the zone's offset; repeat once for DST edges.
    let guess = Date.parse(`${date}T00:00:00Z`);
    for (let i = 0; i < 3; i++) {
      const local = this.fmt.formatToParts(new Date(guess));
      const hm = new Intl.DateTimeFormat('en-GB', { timeZone: this.timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
        .format(new Date(guess));
      const [h, m] = hm.split(':').map(Number);
      const day = `${part(local, 'year')}-${part(local, 'month')}-${part(local, 'day')}`;
      const dayDelta = Math.round((Date.parse(`${day}T00:00:00Z`) - Date.parse(`${date}T00:00:00Z`)) / 86_400_000);
      const offsetMin = dayDelta * 1440 + h * 60 + m;
      if (offsetMin === 0) return guess;
      guess -= offsetMin * 60_000;
    }
    return guess;
  }
}

function part(parts: Intl.DateTimeFormatPart[], type: string): string {
  return parts.find((p) => p.type === type)!.value;
}

export function weekStartOf(date: string, weekStart: number): string {
  const t = Date.parse(`${date}T00:00:00Z`);
  const dow = new Date(t).getUTCDay();
  const back = (dow - weekStart + 7) % 7;
  return new Date(t - back * 86_400_000).toISOString().slice(0, 10);
}

export class DateArgError extends Error {}

/** Accepts YYYY-MM-DD or YYYYMMDD (as ccusage does) and returns YYYY-MM-DD. */
export function parseDateArg(value: string, flag: string): string {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(value.trim());
  if (!m) throw new DateArgError(`${flag} expects a date as YYYY-MM-DD, got "${value}"`);
  const iso = `${m[1]}-${m[2]}-${m[3]}`;
  const t = Date.parse(`${iso}T00:00:00Z`);
  if (Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== iso) {
    throw new DateArgError(`${flag}: "${value}" is not a real calendar date`);
  }
  return iso;
}

export const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
