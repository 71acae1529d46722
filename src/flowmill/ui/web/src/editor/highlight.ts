// A small JavaScript tokenizer for the code fields' highlighting: comments, strings
// (template literals included), numbers, keywords, literals and the rest. A full
// editor (CodeMirror, Monaco) would weigh more than the whole app's first load; this
// is enough to read a function body, and what it gets wrong is only a colour.

export type TokenKind = "comment" | "string" | "number" | "keyword" | "literal" | "template" | "plain";

export interface Token {
  kind: TokenKind;
  text: string;
}

const KEYWORDS = new Set([
  "async", "await", "break", "case", "catch", "class", "const", "continue", "default", "delete", "do",
  "else", "export", "extends", "finally", "for", "function", "if", "import", "in", "instanceof", "let",
  "new", "of", "return", "switch", "throw", "try", "typeof", "var", "void", "while", "yield",
]);
const LITERALS = new Set(["true", "false", "null", "undefined", "this", "NaN", "Infinity"]);

// one alternative per kind, tried in this order at each position
const TOKEN = new RegExp(
  [
    String.raw`(\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$))`, // 1 comment
    String.raw`("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|\x60(?:[^\x60\\]|\\[\s\S])*\x60?)`, // 2 string
    String.raw`(\b(?:0[xX][\da-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?n?)|\.\d+(?:[eE][+-]?\d+)?)`, // 3 number
    String.raw`([A-Za-z_$][\w$]*)`, // 4 word
    String.raw`(\{\{[\s\S]*?\}\})`, // 5 a Flowmill template inside code
  ].join("|"),
  "g",
);

/** The tokens of `code`, covering it exactly (their texts join back to `code`). */
export function tokenize(code: string): Token[] {
  const out: Token[] = [];
  let last = 0;
  const push = (kind: TokenKind, text: string) => {
    if (!text) return;
    const prev = out[out.length - 1];
    if (prev && prev.kind === kind) prev.text += text;
    else out.push({ kind, text });
  };
  TOKEN.lastIndex = 0;
  for (let m = TOKEN.exec(code); m; m = TOKEN.exec(code)) {
    if (m[0] === "") {
      TOKEN.lastIndex++;
      continue;
    }
    push("plain", code.slice(last, m.index));
    if (m[1]) push("comment", m[1]);
    else if (m[2]) push("string", m[2]);
    else if (m[3]) push("number", m[3]);
    else if (m[4]) push(KEYWORDS.has(m[4]) ? "keyword" : LITERALS.has(m[4]) ? "literal" : "plain", m[4]);
    else push("template", m[5]);
    last = m.index + m[0].length;
  }
  push("plain", code.slice(last));
  return out;
}
