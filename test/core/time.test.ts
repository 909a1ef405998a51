import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCalendar, parseDateArg, weekStartOf } from '../../src/core/time.js';

describe('LocalCalendar', () => {
  it('agrees with Intl for every quarter hour across DST switches and odd offsets', () => {
    const zones = ['UTC', 'America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham', 'America/St_Johns'];
    const from = Date.parse('2026-03-01T00:00:00Z');
    const to = Date.parse('2026-04-15T00:00:00Z');
    for (const tz of zones) {
      const cal = new LocalCalendar(tz);
      const intl = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
      for (let t = from; t < to; t += 15 * 60_000) {
        assert.equal(cal.date(t + 7 * 60_000), intl.format(new Date(t + 7 * 60_000)), `${tz} at ${new Date(t).toISOString()}`);
      }
    }
  });

  it('computes the same dates from the process zone (TZ) without Intl', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const cal = new LocalCalendar('America/New_York');
      const intl = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', year: 'numeric', month: '2-digit', day: '2-digit' });
      for (let t = Date.parse('2026-10-25T00:00:00Z'); t < Date.parse('2026-11-05T00:00:00Z'); t += 15 * 60_000) {
        assert.equal(cal.date(t), intl.format(new Date(t)));
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('lists the offset changes over a range, to the quarter hour, for SQL day grouping', () => {
    const from = Date.parse('2026-03-01T00:00:00Z');
    const to = Date.parse('2026-11-15T00:00:00Z');
    for (const tz of ['UTC', 'America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham']) {
      const changes = new LocalCalendar(tz).offsetChanges(from, to);
      const intl = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
      for (let q = from / 900_000; q < to / 900_000; q++) {
        let offsetQ = changes[0].offsetQ;
        for (const c of changes) if (q >= c.fromQ) offsetQ = c.offsetQ;
        const day = new Date(Math.floor((q + offsetQ) / 96) * 86_400_000).toISOString().slice(0, 10);
        assert.equal(day, intl.format(new Date(q * 900_000)), `${tz} at ${new Date(q * 900_000).toISOString()}`);
      }
      if (tz === 'America/New_York' || tz === 'Europe/London' || tz === 'Australia/Lord_Howe') assert.equal(changes.length, 3, tz);
    }
  });

  it('finds local midnight, also on a DST day', () => {
    const ny = new LocalCalendar('America/New_York');
    assert.equal(new Date(ny.startOfDay('2026-03-08')).toISOString(), '2026-03-08T05:00:00.000Z');
    assert.equal(new Date(ny.startOfDay('2026-03-09')).toISOString(), '2026-03-09T04:00:00.000Z');
    assert.equal(new Date(new LocalCalendar('Asia/Tokyo').startOfDay('2026-11-21')).toISOString(), '2026-11-20T15:00:00.000Z');
  });

  it('weeks start on the chosen day; date arguments are validated', () => {
    assert.equal(weekStartOf('2026-11-20', 0), '2026-11-15');
    assert.equal(weekStartOf('2026-11-20', 1), '2026-11-16');
    assert.equal(parseDateArg('20261120', '--since'), '2026-11-20');
    assert.throws(() => parseDateArg('2026-02-30', '--since'), /not a real calendar date/);
    assert.throws(() => parseDateArg('nope', '--until'), /--until expects a date/);
  });
});
