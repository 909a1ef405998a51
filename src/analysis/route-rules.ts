/**
 * A deliberately small routing-rule language for `whatif --route` (full routing policy lives elsewhere).
 *
 *   RULES  := RULE ("," RULE)*
 *   RULE   := COND ("&" COND)* "=" MODEL   |   "*=" MODEL
 *   COND   := FIELD OP NUMBER   |   "model~" TEXT
 *   FIELD  := output | prompt | input | cacheRead | cacheWrite
 *   OP     := "<" | "<=" | ">" | ">="
 *   NUMBER := digits, optionally with a k (thousand) or m (million) suffix
 *
 * Example: `output<800&prompt<30k=claude-haiku-4-5,model~opus=claude-sonnet-4-6`.
 * Rules are tried in order; the first whose conditions all hold picks the model; no match keeps the model.
 * `model~x` matches when the recorded model id contains `x`. Fields are the request's recorded tokens
 * (prompt = input + cache writes + cache reads).
 */
import { promptTokens, type Usage } from '../core/types.js';

export type RouteField = 'output' | 'prompt' | 'input' | 'cacheRead' | 'cacheWrite';
export type RouteOp = '<' | '<=' | '>' | '>=';

export type RouteCondition =
  | { field: RouteField; op: RouteOp; value: number }
  | { field: 'model'; contains: string };

export interface RouteRule {
  conditions: RouteCondition[];
  model: string;
  text: string;
}

export class RouteRuleError extends Error {}

const FIELDS: RouteField[] = ['output', 'prompt', 'input', 'cacheRead', 'cacheWrite'];

export function parseRouteRules(text: string): RouteRule[] {
  const rules: RouteRule[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const m = /^(.*[^<>])=\s*([A-Za-z0-9][\w.:@/[\]-]*)$/.exec(part);
    if (!m) throw new RouteRuleError(`rule "${part}" must look like CONDITIONS=MODEL (e.g. output<800&prompt<30k=claude-haiku-4-5)`);
    const lhs = m[1].trim();
    const conditions: RouteCondition[] = [];
    if (lhs !== '*') {
      for (const c of lhs.split('&')) conditions.push(parseCondition(c.trim(), part));
    }
    rules.push({ conditions, model: m[2], text: part });
  }
  if (rules.length === 0) throw new RouteRuleError('no routing rule given');
  return rules;
}

function parseCondition(c: string, rule: string): RouteCondition {
  const model = /^model~(.+)$/.exec(c);
  if (model) return { field: 'model', contains: model[1].toLowerCase() };
  const m = /^([A-Za-z]+)\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)([kKmM]?)$/.exec(c);
  if (!m) throw new RouteRuleError(`condition "${c}" in "${rule}" must be FIELD<N, FIELD<=N, FIELD>N, FIELD>=N or model~TEXT`);
  const field = FIELDS.find((f) => f.toLowerCase() === m[1].toLowerCase());
  if (!field) throw new RouteRuleError(`unknown field "${m[1]}" in "${rule}" (use ${FIELDS.join(', ')} or model~TEXT)`);
  const mult = m[4].toLowerCase() === 'k' ? 1_000 : m[4].toLowerCase() === 'm' ? 1_000_000 : 1;
  return { field, op: m[2] as RouteOp, value: Number(m[3]) * mult };
}

function fieldValue(field: RouteField, u: Usage): number {
  switch (field) {
    case 'output': return u.output;
    case 'prompt': return promptTokens(u);
    case 'input': return u.input;
    case 'cacheRead': return u.cacheRead;
    case 'cacheWrite': return u.cacheWrite5m + u.cacheWrite1h;
  }
}

/** The model the rules pick for a request, or null when no rule matches. */
export function routeModel(rules: RouteRule[], model: string | null, u: Usage): string | null {
  for (const rule of rules) {
    const ok = rule.conditions.every((c) => {
      if (c.field === 'model') return (model ?? '').toLowerCase().includes(c.contains);
      const v = fieldValue(c.field, u);
      switch (c.op) {
        case '<': return v < c.value;
        case '<=': return v <= c.value;
        case '>': return v > c.value;
        case '>=': return v >= c.value;
      }
    });
    if (ok) return rule.model;
  }
  return null;
}
