import { createRequire } from 'node:module';

// Loaded on first use: JSON and CSV output never need them, and a warm report is mostly startup.
const require = createRequire(import.meta.url);
const lazy = {
  get Table(): typeof import('cli-table3') { return require('cli-table3'); },
  get pc(): typeof import('picocolors') { return require('picocolors'); },
};

export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 1234 -> 1.2K, 5_449_535_119 -> 5.45B: keeps tables inside 80 columns. */
export function formatCompact(n: number): string {
  const abs = Math.abs(n);
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, s] of units) {
    if (abs >= v) {
      const x = n / v;
      return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}${s}`;
    }
  }
  return String(Math.round(n));
}

export function formatUsd(n: number): string {
  if (n !== 0 && Math.abs(n) < 0.01) return `$${n.toFixed(4)}`;
  return `$${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** A cost that may include unpriced usage: never shown as a bare $0. */
export function formatCost(cost: number, unknownTokens: number): string {
  if (unknownTokens > 0) return cost > 0 ? `${formatUsd(cost)}+?` : 'unknown';
  return formatUsd(cost);
}

export function formatPercent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

export interface Column {
  header: string;
  align?: 'left' | 'right';
}

/** A borderless table that fits the terminal; colours only on a TTY. */
/**
 * Replace control characters (C0 but newline, DEL, C1) with '?': project paths, session ids and model names come from
 * transcripts, which are untrusted, and an escape sequence in them must not reach the terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '?');
}

export function renderTable(columns: Column[], rows: string[][], footer?: string[]): string {
  const { Table, pc } = lazy;
  rows = rows.map((r) => r.map(printable));
  footer = footer?.map(printable);
  const table = new Table({
    head: columns.map((c) => pc.bold(c.header)),
    colAligns: columns.map((c) => c.align ?? 'right'),
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '',
      'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: ' ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 1, compact: true },
  });
  for (const r of rows) table.push(r);
  if (footer) {
    table.push(columns.map((c) => pc.dim('─'.repeat(Math.max(3, Math.min(12, c.header.length))))));
    table.push(footer.map((f) => pc.bold(f)));
  }
  return table.toString().split('\n').map((l) => l.replace(/\s+$/, '')).join('\n');
}

export function csvLine(values: (string | number | null)[]): string {
  return values.map((v) => {
    if (v === null) return '';
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }).join(',');
}

export function terminalWidth(): number {
  return process.stdout.isTTY && process.stdout.columns ? process.stdout.columns : 80;
}

/** Word-wrap prose to the terminal width (tables are sized separately). */
export function wrap(text: string, width = terminalWidth()): string {
  text = printable(text);
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out.join('\n');
}
