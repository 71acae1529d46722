// Small tokenizers for the code fields' highlighting, JavaScript and Python: comments,
// strings (template literals, triple-quoted and prefixed strings included), numbers,
// keywords, literals, Python's decorators and the rest. A full editor (CodeMirror,
// Monaco) would weigh more than the whole app's first load; this is enough to read a
// function body, and what it gets wrong is only a colour.

export type TokenKind = "comment" | "string" | "number" | "keyword" | "literal" | "decorator" | "template" | "plain";

/** The languages a code field is highlighted as (custom code's `language`). */
export type Language = "javascript" | "python";

export interface Token {
  kind: TokenKind;
  text: string;
}

interface Grammar {
  /** One capture group per alternative, in the order of `kinds`; "word" is a name to
   * look up in `keywords` and `literals`. Tried in this order at each position. */
  token: RegExp;
  kinds: (TokenKind | "word")[];
  keywords: Set<string>;
  literals: Set<string>;
}

const TEMPLATE = String.raw`(\{\{[\s\S]*?\}\})`; // a Flowmill template inside code

const JAVASCRIPT: Grammar = {
  token: new RegExp(
    [
      String.raw`(\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$))`,
      String.raw`("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|\x60(?:[^\x60\\]|\\[\s\S])*\x60?)`,
      String.raw`(\b(?:0[xX][\da-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?n?)|\.\d+(?:[eE][+-]?\d+)?)`,
      String.raw`([A-Za-z_$][\w$]*)`,
      TEMPLATE,
    ].join("|"),
    "g",
  ),
  kinds: ["comment", "string", "number", "word", "template"],
  keywords: new Set([
    "async", "await", "break", "case", "catch", "class", "const", "continue", "default", "delete", "do",
    "else", "export", "extends", "finally", "for", "function", "if", "import", "in", "instanceof", "let",
    "new", "of", "return", "switch", "throw", "try", "typeof", "var", "void", "while", "yield",
  ]),
  literals: new Set(["true", "false", "null", "undefined", "this", "NaN", "Infinity"]),
};

const PYTHON: Grammar = {
  token: new RegExp(
    [
      String.raw`(#[^\n]*)`,
      // an optional prefix (r, b, f, u, rb, fr…), then triple quotes (which may span
      // lines; unclosed, to the end) or single ones (one line)
      String.raw`((?:[rRuU]|[fFbB][rR]?|[rR][fFbB])?(?:"""[\s\S]*?(?:"""|$(?![\s\S]))|'''[\s\S]*?(?:'''|$(?![\s\S]))|"(?:[^"\\\n]|\\[\s\S])*"?|'(?:[^'\\\n]|\\[\s\S])*'?))`,
      String.raw`(\b(?:0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?[jJ]?)|\.\d[\d_]*(?:[eE][+-]?\d+)?[jJ]?)`,
      // a decorator starts its line; elsewhere `@` is matrix multiplication
      String.raw`((?<=^[ \t]*)@[ \t]*[A-Za-z_][\w.]*)`,
      String.raw`([A-Za-z_]\w*)`,
      TEMPLATE,
    ].join("|"),
    "gm",
  ),
  kinds: ["comment", "string", "number", "decorator", "word", "template"],
  keywords: new Set([
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else",
    "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not",
    "or", "pass", "raise", "return", "try", "while", "with", "yield",
  ]),
  literals: new Set(["True", "False", "None", "self", "cls"]),
};

const GRAMMARS: Record<Language, Grammar> = { javascript: JAVASCRIPT, python: PYTHON };

/** The tokens of `code` in `language`, covering it exactly (their texts join back to
 * `code`). */
export function tokenize(code: string, language: Language = "javascript"): Token[] {
  const { token, kinds, keywords, literals } = GRAMMARS[language];
  const out: Token[] = [];
  let last = 0;
  const push = (kind: TokenKind, text: string) => {
    if (!text) return;
    const prev = out[out.length - 1];
    if (prev && prev.kind === kind) prev.text += text;
    else out.push({ kind, text });
  };
  token.lastIndex = 0;
  for (let m = token.exec(code); m; m = token.exec(code)) {
    if (m[0] === "") {
      token.lastIndex++;
      continue;
    }
    push("plain", code.slice(last, m.index));
    const group = m.findIndex((g, i) => i > 0 && g !== undefined);
    const kind = kinds[group - 1];
    const text = m[group];
    push(kind !== "word" ? kind : keywords.has(text) ? "keyword" : literals.has(text) ? "literal" : "plain", text);
    last = m.index + m[0].length;
  }
  push("plain", code.slice(last));
  return out;
}

/** The language of a code field whose config has a `language` field (custom code):
 * Python when it says so, else JavaScript. */
export function languageOf(language: unknown): Language {
  return language === "python" ? "python" : "javascript";
}
