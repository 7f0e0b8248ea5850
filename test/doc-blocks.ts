/** The fenced code blocks of a markdown page, for the tests that check or run docs as written. */

export interface CodeBlock {
  /** The info string after the opening fence (`sh`, `python`, ``). */
  lang: string;
  /** The block's text, without the fences, ending with a newline. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** Every fenced block of `markdown` (fences at any indentation; the indentation is removed). */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(indent));
    blocks.push({ lang: open[2], text: body.length ? body.join("\n") + "\n" : "", line: i + 1 });
    i = j;
  }
  return blocks;
}
