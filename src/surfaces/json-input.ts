/** Parse what Claude Code pipes to a hook or statusline command: a JSON object, else null (never throws). */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  if (!text.trim()) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Record<string, unknown>) : null;
}
