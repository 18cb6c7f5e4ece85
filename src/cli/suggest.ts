/**
 * "Did you mean …?" for a misspelt command, option or tool name. A few lines
 * of edit distance rather than a dependency: the lists are short (commands,
 * options, a registry's tools) and this runs only on the error path.
 */

/** Edit distance counting an insertion, a deletion, a substitution or a swap of two neighbours as one edit. */
export function editDistance(a: string, b: string): number {
  // Three rows of the usual table: the swap (optimal string alignment) looks two rows back.
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (before[j - 2] ?? 0) + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * The candidates close enough to `word` to be what was meant, closest first (at
 * most `limit`): within a third of the word's length in edits (at least one),
 * or starting with it when it has three letters or more. Case is ignored.
 */
export function closest(word: string, candidates: Iterable<string>, limit = 3): string[] {
  const w = word.toLowerCase();
  const budget = Math.max(1, Math.floor(w.length / 3));
  const scored: { name: string; score: number }[] = [];
  for (const name of new Set(candidates)) {
    const n = name.toLowerCase();
    const distance = editDistance(w, n);
    if (distance <= budget) scored.push({ name, score: distance });
    else if (w.length >= 3 && n.startsWith(w)) scored.push({ name, score: budget + 1 });
  }
  scored.sort((x, y) => x.score - y.score || x.name.localeCompare(y.name));
  return scored.slice(0, limit).map((s) => s.name);
}

/** " (did you mean 'a' or 'b'?)", or "" when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>, quote: (s: string) => string = (s) => `'${s}'`): string {
  const names = closest(word, candidates).map(quote);
  if (names.length === 0) return "";
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
  return ` (did you mean ${list}?)`;
}
