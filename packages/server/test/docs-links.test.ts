// Documentation that is true (issue 20): every relative Markdown link in the project's docs
// resolves to a file in the repository, every `#anchor` in such a link names a heading of its
// target (GitHub's slug rules), and no tracked file points outside the repository (a `/work/…`
// path only exists on the team machine). Dependency-free and fast: it reads a dozen files and
// one `git ls-files` listing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const thisFile = relative(repoRoot, fileURLToPath(import.meta.url));

/** The Markdown files whose links are checked, repository-relative. */
function checkedDocs(): string[] {
  const docs = ['README.md', 'deploy/README.md', 'jepsen-lite/README.md'];
  for (const name of readdirSync(join(repoRoot, 'docs'))) if (name.endsWith('.md')) docs.push(`docs/${name}`);
  for (const pkg of readdirSync(join(repoRoot, 'packages'))) docs.push(`packages/${pkg}/README.md`);
  return docs.filter((doc) => existsSync(join(repoRoot, doc))).sort();
}

/** Markdown lines with fenced code blocks blanked, line numbers kept. */
function withoutFences(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return '';
    }
    if (marker !== undefined) {
      fence = marker;
      return '';
    }
    return line;
  });
}

/** Markdown lines with fenced code blocks and inline code spans blanked, line numbers kept. */
function withoutCode(markdown: string): string[] {
  return withoutFences(markdown).map((line) => line.replace(/(`+)[^`].*?\1/g, ''));
}

/** GitHub's heading anchor: lower-case, punctuation other than '-' and '_' removed, spaces → '-'. */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading contributes its text
    .replace(/<[^>]+>/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a Markdown file defines: its headings' slugs (duplicates get -1, -2, …). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = githubSlug(heading);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  for (const line of markdown.split('\n')) {
    for (const match of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(match[1]!);
  }
  return anchors;
}

interface Link {
  readonly line: number;
  readonly target: string;
}

/** Inline links `[text](target "title")` and reference definitions `[ref]: target`. */
function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  withoutCode(markdown).forEach((text, index) => {
    for (const match of text.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line: index + 1, target: match[1]!.replace(/^<|>$/g, '') });
    }
    const reference = /^ {0,3}\[[^\]]+\]:\s*(\S+)/.exec(text)?.[1];
    if (reference !== undefined) links.push({ line: index + 1, target: reference.replace(/^<|>$/g, '') });
  });
  return links;
}

/** Problems with one document's relative links, as `file:line: message` strings. */
function brokenLinks(doc: string): string[] {
  const problems: string[] = [];
  const markdown = readFileSync(join(repoRoot, doc), 'utf8');
  for (const { line, target } of linksOf(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: — not ours to resolve
    const where = `${doc}:${line}: ${target}`;
    if (target.startsWith('/')) {
      problems.push(`${where}: absolute path (use a path relative to the document)`);
      continue;
    }
    const hashAt = target.indexOf('#');
    const pathPart = decodeURIComponent(hashAt === -1 ? target : target.slice(0, hashAt));
    const anchor = hashAt === -1 ? undefined : decodeURIComponent(target.slice(hashAt + 1));
    const file = pathPart === '' ? join(repoRoot, doc) : resolve(repoRoot, dirname(doc), pathPart);
    if (!file.startsWith(repoRoot + '/') || !existsSync(file)) {
      problems.push(`${where}: no such file`);
      continue;
    }
    if (anchor === undefined || anchor === '') continue;
    if (!file.endsWith('.md') || statSync(file).isDirectory()) {
      problems.push(`${where}: anchor into a file that is not Markdown`);
      continue;
    }
    if (!anchorsOf(readFileSync(file, 'utf8')).has(anchor)) problems.push(`${where}: no heading with this anchor`);
  }
  return problems;
}

/** Tracked files (outside this check) that mention a `/work/` path of the team machine. */
function pathsOutsideRepo(): string[] {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: repoRoot, encoding: 'utf8' }).split('\0');
  const problems: string[] = [];
  for (const file of files) {
    if (file === '' || file === thisFile || file.includes('node_modules/')) continue;
    const path = join(repoRoot, file);
    if (!existsSync(path) || statSync(path).size > MAX_SCANNED_FILE_BYTES) continue;
    const text = readFileSync(path, 'utf8');
    if (!text.includes('/work/')) continue;
    text.split('\n').forEach((line, index) => {
      if (line.includes('/work/')) problems.push(`${file}:${index + 1}: ${line.trim()}`);
    });
  }
  return problems;
}

/** Larger tracked files are data (lockfiles, recorded results), not comments or docs. */
const MAX_SCANNED_FILE_BYTES = 1_000_000;

describe('documentation links', () => {
  it('computes GitHub heading slugs', () => {
    expect(githubSlug('Backup and restore')).toBe('backup-and-restore');
    expect(githubSlug('`quorumkv health` — the whole cluster')).toBe('quorumkv-health--the-whole-cluster');
    expect(githubSlug('Limits (named, validated at start-up)')).toBe('limits-named-validated-at-start-up');
    expect(githubSlug('snake_case & [a link](x.md)')).toBe('snake_case--a-link');
  });

  it('finds a broken link, a missing anchor and code that only looks like a link', () => {
    const anchors = anchorsOf('# Top\n\n## Part one\n\n```\n# not a heading\n```\n## Part one\n');
    expect([...anchors]).toEqual(['top', 'part-one', 'part-one-1']);
    const links = linksOf('See [a](a.md#x) and `[b](b.md)`.\n```\n[c](c.md)\n```\n[ref]: d.md\n');
    expect(links).toEqual([
      { line: 1, target: 'a.md#x' },
      { line: 5, target: 'd.md' },
    ]);
  });

  it('every relative link in the docs resolves, with its anchor', () => {
    const docs = checkedDocs();
    expect(docs).toContain('README.md');
    expect(docs.flatMap(brokenLinks)).toEqual([]);
  });

  it('no tracked file points outside the repository', () => {
    expect(pathsOutsideRepo()).toEqual([]);
  });
});
