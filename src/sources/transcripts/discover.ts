import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, basename } from 'node:path';

export interface TranscriptRoot {
  /** The `projects` folder holding `<encoded cwd>/<session>.jsonl` files. */
  projectsDir: string;
}

/**
 * Transcript roots the way Claude Code finds its config: `CLAUDE_CONFIG_DIR` (comma-separated,
 * each a config dir or its `projects` folder), else `~/.config/claude` and `~/.claude`.
 * Returns the roots that exist, and the configured ones that do not (so sync can say so).
 */
export function transcriptRoots(env: NodeJS.ProcessEnv = process.env): { roots: TranscriptRoot[]; missing: string[] } {
  const home = env.HOME || homedir();
  const expand = (p: string) => resolve(p.replace(/^~(?=$|\/)/, home));
  const configured = env.CLAUDE_CONFIG_DIR?.split(',').map((p) => p.trim()).filter(Boolean);
  const candidates = configured && configured.length
    ? configured.map((p) => (basename(expand(p)) === 'projects' ? expand(p) : join(expand(p), 'projects')))
    : [join(env.XDG_CONFIG_HOME ? expand(env.XDG_CONFIG_HOME) : join(home, '.config'), 'claude', 'projects'), join(home, '.claude', 'projects')];
  const roots: TranscriptRoot[] = [];
  const missing: string[] = [];
  for (const dir of [...new Set(candidates)]) {
    if (existsSync(dir) && statSync(dir).isDirectory()) roots.push({ projectsDir: dir });
    else missing.push(dir);
  }
  return { roots, missing };
}

export interface FoundFile {
  path: string;
  /** Relative to the projects folder, `/`-separated. */
  relPath: string;
}

/** Every `*.jsonl` under a projects folder, recursively (subagent files included), sorted by path. */
export function listTranscriptFiles(root: TranscriptRoot, onError: (path: string, err: Error) => void): FoundFile[] {
  const out: FoundFile[] = [];
  const walk = (dir: string, rel: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      onError(dir, err as Error);
      return;
    }
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      const full = join(dir, e.name);
      // Symlinked folders are not followed: a link back up the tree would loop forever.
      if (e.isDirectory()) walk(full, childRel);
      else if (e.name.endsWith('.jsonl') && (e.isFile() || e.isSymbolicLink())) out.push({ path: full, relPath: childRel });
    }
  };
  walk(root.projectsDir, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
