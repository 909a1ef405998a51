import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { assertTimeZone, LocalCalendar, parseDateArg, systemTimeZone } from '../../../core/time.js';
import { addDays, PolicyValidationError } from '../../../policy/budgets.js';
import { planDowngrade } from '../../../policy/downgrade.js';
import { requestFeatures } from '../../../policy/features.js';
import { complexityScore, decideRoute, routeReport, validateRule, type RouteRule } from '../../../policy/routing.js';
import { loadPriceBook, openStore } from '../context.js';
import { UsageError, UserFacingError } from '../errors.js';
import { formatUsd, renderTable } from '../format.js';
import { loadRoutingConfig, routesPath, saveRoutingConfig } from '../routes-file.js';

interface AddFlags {
  to?: string;
  model?: string;
  minInputTokens?: string;
  maxInputTokens?: string;
  tools?: string;
  thinking?: string;
  agent?: string;
  system?: string;
  minComplexity?: string;
  maxComplexity?: string;
  dryRun?: boolean;
  position?: string;
  replace?: boolean;
  json?: boolean;
}

/** Rule fields as the `route add` flags that set them, so validation messages name what the user typed. */
const FLAG_OF: Record<string, string> = {
  name: 'name', target: '--to', dryRun: '--dry-run', match: 'match', 'match.model': '--model',
  'match.minInputTokens': '--min-input-tokens', 'match.maxInputTokens': '--max-input-tokens', 'match.tools': '--tools',
  'match.thinking': '--thinking', 'match.agent': '--agent', 'match.system': '--system',
  'match.minComplexity': '--min-complexity', 'match.maxComplexity': '--max-complexity',
};

const num = (v: string | undefined): unknown => (v === undefined ? undefined : /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);
const yesNo = (v: string | undefined): unknown => {
  if (v === undefined) return undefined;
  const t = v.toLowerCase();
  return ['yes', 'true', 'on', '1'].includes(t) ? true : ['no', 'false', 'off', '0'].includes(t) ? false : v;
};
const list = (v: string | undefined): string[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => x.trim()).filter(Boolean));

export function registerRoute(program: Command): void {
  const route = program.command('route')
    .description(`model routing rules used by the proxy (${'TOKENTALLY_HOME/routes.json'}); dry runs record would-be savings`);

  route.command('list', { isDefault: true })
    .description('the rules, in the order they are tried (the first match decides)')
    .option('--json', 'JSON output')
    .action((flags: { json?: boolean }) => {
      const cfg = loadRoutingConfig(loadPriceBook());
      if (flags.json) {
        process.stdout.write(JSON.stringify({ path: routesPath(), ...cfg }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${routesPath()}: ${cfg.rules.length} rule(s)${cfg.dryRun ? ', dry-run mode (nothing is rewritten)' : ''}\n`);
      if (cfg.rules.length) {
        process.stdout.write(renderTable(
          [{ header: '#' }, { header: 'Rule', align: 'left' }, { header: 'When', align: 'left' }, { header: 'Target', align: 'left' }, { header: 'Mode', align: 'left' }],
          cfg.rules.map((r, i) => [String(i + 1), r.name, describeMatch(r), r.target, (r.dryRun ?? cfg.dryRun) ? 'dry-run' : 'live']),
        ) + '\n');
      }
      for (const chain of cfg.ladder) process.stdout.write(`downgrade ladder: ${chain.join(' -> ')}\n`);
    });

  route.command('add <name>')
    .description('add a rule (all given conditions must hold); example: route add small --model "claude-opus-*" --max-complexity 0.3 --to claude-sonnet-4-6')
    .option('--to <model>', 'model to send matching requests to (required)')
    .option('--model <ids>', 'requested model ids, comma-separated; a trailing * matches a prefix')
    .option('--min-input-tokens <n>', 'estimated prompt tokens at least n (body bytes / 4)')
    .option('--max-input-tokens <n>', 'estimated prompt tokens at most n')
    .option('--tools <yes|no>', 'the request defines tools, or not')
    .option('--thinking <yes|no>', 'thinking enabled/adaptive, or not')
    .option('--agent <main|subagent>', 'main loop, or a subagent (x-claude-code-agent-id header)')
    .option('--system <fingerprints>', 'system-prompt fingerprints, comma-separated (see route explain)')
    .option('--min-complexity <x>', 'complexity score at least x (0-1, see docs/budgets-and-routing.md)')
    .option('--max-complexity <x>', 'complexity score at most x (0-1)')
    .option('--dry-run', 'record what the rule would do without rewriting requests')
    .option('--position <n>', 'insert at this position (1 = tried first; default last)')
    .option('--replace', 'replace an existing rule of the same name (keeps its position unless --position)')
    .option('--json', 'JSON output')
    .action((name: string, flags: AddFlags) => {
      const prices = loadPriceBook();
      const cfg = loadRoutingConfig(prices);
      if (flags.to === undefined) throw new UsageError('--to: required (the model matching requests go to)');
      const match: Record<string, unknown> = {
        model: list(flags.model), minInputTokens: num(flags.minInputTokens), maxInputTokens: num(flags.maxInputTokens),
        tools: yesNo(flags.tools), thinking: yesNo(flags.thinking), agent: flags.agent, system: list(flags.system),
        minComplexity: num(flags.minComplexity), maxComplexity: num(flags.maxComplexity),
      };
      for (const k of Object.keys(match)) if (match[k] === undefined) delete match[k];
      let rule: RouteRule;
      try {
        rule = validateRule({ name, target: flags.to, match, ...(flags.dryRun ? { dryRun: true } : {}) }, prices, 'rule', (p) => FLAG_OF[p] ?? p);
      } catch (err) {
        if (err instanceof PolicyValidationError) throw new UsageError(err.message);
        throw err;
      }
      const at = cfg.rules.findIndex((r) => r.name === name);
      if (at >= 0 && !flags.replace) throw new UsageError(`name: a rule named "${name}" exists (use --replace, or route rm ${name})`);
      let pos = at >= 0 ? at : cfg.rules.length;
      if (flags.position !== undefined) {
        const p = Number(flags.position);
        if (!Number.isInteger(p) || p < 1) throw new UsageError(`--position: expected a whole number >= 1, got "${flags.position}"`);
        pos = Math.min(p - 1, cfg.rules.length - (at >= 0 ? 1 : 0));
      }
      const rules = cfg.rules.filter((r) => r.name !== name);
      rules.splice(pos, 0, rule);
      const path = saveRoutingConfig({ ...cfg, rules });
      if (flags.json) process.stdout.write(JSON.stringify({ path, rule, position: pos + 1 }, null, 2) + '\n');
      else process.stdout.write(`${at >= 0 ? 'replaced' : 'added'} rule ${name} (#${pos + 1}): ${describeMatch(rule)} -> ${rule.target}${rule.dryRun ? ' (dry run)' : ''}\n`);
    });

  route.command('rm <name>')
    .alias('remove')
    .description('delete a rule')
    .option('--json', 'JSON output')
    .action((name: string, flags: { json?: boolean }) => {
      const prices = loadPriceBook();
      const cfg = loadRoutingConfig(prices);
      if (!cfg.rules.some((r) => r.name === name)) throw new UserFacingError(`no rule named "${name}"`, 'see tokentally route list');
      saveRoutingConfig({ ...cfg, rules: cfg.rules.filter((r) => r.name !== name) });
      if (flags.json) process.stdout.write(JSON.stringify({ removed: name }) + '\n');
      else process.stdout.write(`removed rule ${name}\n`);
    });

  route.command('dry-run <on|off>')
    .description('global dry-run mode: every rule only records what it would do (a rule\'s own dryRun wins)')
    .option('--json', 'JSON output')
    .action((mode: string, flags: { json?: boolean }) => {
      const v = yesNo(mode);
      if (typeof v !== 'boolean') throw new UsageError(`dry-run: expected on or off, got "${mode}"`);
      const cfg = loadRoutingConfig(loadPriceBook());
      saveRoutingConfig({ ...cfg, dryRun: v });
      if (flags.json) process.stdout.write(JSON.stringify({ dryRun: v }) + '\n');
      else process.stdout.write(`routing dry-run ${v ? 'on: rules record what they would do, nothing is rewritten' : 'off: matching requests are rewritten'}\n`);
    });

  route.command('report')
    .description('savings made by routed requests and would-be savings of dry runs, per rule (and budget downgrades)')
    .option('--json', 'JSON output')
    .option('-s, --since <date>', 'first day (YYYY-MM-DD)')
    .option('-u, --until <date>', 'last day (YYYY-MM-DD)')
    .option('-z, --timezone <zone>', 'IANA time zone for the days (default: the system zone)')
    .action(async (flags: { json?: boolean; since?: string; until?: string; timezone?: string }) => {
      const cal = new LocalCalendar(assertTimeZone(flags.timezone ?? systemTimeZone()));
      const fromTs = flags.since ? cal.startOfDay(parseDateArg(flags.since, '--since')) : undefined;
      const toTs = flags.until ? cal.startOfDay(addDays(parseDateArg(flags.until, '--until'), 1)) : undefined;
      const store = openStore(loadPriceBook());
      try {
        const decisions = await store.listRouteDecisions({ fromTs, toTs });
        const rep = routeReport(decisions);
        if (flags.json) {
          process.stdout.write(JSON.stringify({ decisions: decisions.length, ...rep }, null, 2) + '\n');
          return;
        }
        if (!rep.rows.length) {
          process.stdout.write('no routing decisions recorded yet (rules apply to requests through tokentally proxy)\n');
          return;
        }
        process.stdout.write(renderTable(
          [{ header: 'Rule', align: 'left' }, { header: 'Kind', align: 'left' }, { header: 'Routed' }, { header: 'Saved' },
            { header: 'Dry runs' }, { header: 'Would save' }, { header: 'Refused' }],
          rep.rows.map((r) => [r.rule, r.kind, String(r.routed), formatUsd(r.savedUsd), String(r.dryRun), formatUsd(r.wouldSaveUsd), String(r.refused)]),
          ['Total', '', '', formatUsd(rep.savedUsd), '', formatUsd(rep.wouldSaveUsd), ''],
        ) + '\n');
        const est = rep.rows.reduce((a, r) => a + r.estimated, 0);
        process.stdout.write('Saved = what the other model would have cost for the same usage minus what was paid; '
          + 'refused = a rule matched but the target lacks something the request uses.\n');
        if (est) process.stdout.write(`${est} decision(s) have no settled usage yet: their savings are estimates.\n`);
      } finally {
        await store.close();
      }
    });

  route.command('explain <request.json>')
    .description('show the features, complexity score, system-prompt fingerprint and decision for a Messages API request body')
    .option('--subagent', 'treat it as a subagent request (x-claude-code-agent-id present)')
    .option('--json', 'JSON output')
    .action((file: string, flags: { subagent?: boolean; json?: boolean }) => {
      let raw: Buffer;
      let doc: unknown;
      try {
        raw = readFileSync(file);
        doc = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        throw new UserFacingError(`cannot read ${file} as JSON: ${(err as Error).message}`);
      }
      // Recorded wire captures wrap the body: {"headers": {...}, "body": {...}}.
      const wrapped = doc as { body?: unknown; headers?: Record<string, string> };
      const body = wrapped && typeof wrapped === 'object' && wrapped.body && typeof wrapped.body === 'object' ? wrapped.body : doc;
      const headers: Record<string, string> = { ...(wrapped?.headers ?? {}) };
      if (flags.subagent) headers['x-claude-code-agent-id'] = 'explain';
      const bytes = body === doc ? raw.length : Buffer.byteLength(JSON.stringify(body));
      const prices = loadPriceBook();
      const f = requestFeatures(body, bytes, headers);
      const cfg = loadRoutingConfig(prices);
      const now = Date.now();
      const decision = decideRoute(cfg, f, prices, now);
      const downgrade = planDowngrade(prices, f, cfg.ladder, now);
      const out = { features: f, complexity: complexityScore(f), decision, downgrade };
      if (flags.json) {
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      process.stdout.write(`model ${f.model ?? '?'}; ~${f.estInputTokens} input tokens (${f.bodyBytes} bytes / 4); max_tokens ${f.maxTokens ?? '-'}\n`
        + `tools ${f.toolCount}; thinking ${f.thinking ?? 'off'}${f.thinkingInHistory ? ' (thinking blocks in history)' : ''}; `
        + `${f.isSubagent ? 'subagent' : 'main'}; system fingerprint ${f.systemFingerprint ?? '-'}\n`
        + `complexity ${out.complexity} (latest human turn ${f.lastUserChars} chars, ${f.hardWords} hard / ${f.easyWords} easy words, `
        + `${f.messageCount} messages)\n`);
      if (!decision) process.stdout.write('routing: no rule matches\n');
      else process.stdout.write(`routing: rule ${decision.rule} -> ${decision.modelTo} (${decision.outcome}${decision.reason ? `: ${decision.reason}` : ''})\n`);
      process.stdout.write(downgrade.plan
        ? `a downgrade budget would send it to ${downgrade.plan.to}\n`
        : `no downgrade possible${downgrade.skipped.length ? `: ${downgrade.skipped.map((s) => s.reason).join('; ')}` : ''}\n`);
    });
}

function describeMatch(r: RouteRule): string {
  const m = r.match;
  const parts: string[] = [];
  if (m.model) parts.push(`model ${m.model.join('|')}`);
  if (m.minInputTokens !== undefined) parts.push(`input >= ${m.minInputTokens}`);
  if (m.maxInputTokens !== undefined) parts.push(`input <= ${m.maxInputTokens}`);
  if (m.tools !== undefined) parts.push(m.tools ? 'tools' : 'no tools');
  if (m.thinking !== undefined) parts.push(m.thinking ? 'thinking' : 'no thinking');
  if (m.agent) parts.push(m.agent);
  if (m.system) parts.push(`system ${m.system.join('|')}`);
  if (m.minComplexity !== undefined) parts.push(`complexity >= ${m.minComplexity}`);
  if (m.maxComplexity !== undefined) parts.push(`complexity <= ${m.maxComplexity}`);
  return parts.length ? parts.join(', ') : 'every request';
}
