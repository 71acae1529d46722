import { describe, expect, it } from "vitest";
import { languageOf, tokenize, type Language, type TokenKind } from "./highlight";

/** The non-plain tokens, as [kind, text]. */
const marked = (code: string, language: Language) =>
  tokenize(code, language).filter((t) => t.kind !== "plain").map((t) => [t.kind, t.text]);
const joined = (code: string, language: Language) => tokenize(code, language).map((t) => t.text).join("");
const of = (kind: TokenKind, code: string, language: Language) =>
  tokenize(code, language).filter((t) => t.kind === kind).map((t) => t.text);

describe("tokenize, JavaScript", () => {
  it("marks comments, strings, numbers, keywords, literals and templates", () => {
    const code = '// twice\nconst n = input.n * 2; return { s: `a${n}`, ok: true, t: "{{ vars.x }}" } /* end */';
    expect(marked(code, "javascript")).toEqual([
      ["comment", "// twice"], ["keyword", "const"], ["number", "2"], ["keyword", "return"],
      ["string", "`a${n}`"], ["literal", "true"], ["string", '"{{ vars.x }}"'], ["comment", "/* end */"],
    ]);
    expect(joined(code, "javascript")).toBe(code);
  });

  it("is the default, and does not know Python's words", () => {
    expect(marked("def f(): pass  # x", "javascript")).toEqual([]);
    expect(tokenize("return 1")).toEqual(tokenize("return 1", "javascript"));
  });
});

describe("tokenize, Python", () => {
  it("marks keywords, literals, comments and numbers", () => {
    const code = "def main(input):\n    # sum the lines\n    total = sum(x for x in input if x is not None)\n    return {'total': total * 1.5e3, 'ok': True}";
    expect(of("keyword", code, "python")).toEqual(["def", "for", "in", "if", "is", "not", "return"]);
    expect(of("literal", code, "python")).toEqual(["None", "True"]);
    expect(of("comment", code, "python")).toEqual(["# sum the lines"]);
    expect(of("number", code, "python")).toEqual(["1.5e3"]);
    expect(of("string", code, "python")).toEqual(["'total'", "'ok'"]);
    expect(joined(code, "python")).toBe(code);
  });

  it("keeps a triple-quoted string whole across lines, with quotes and # inside", () => {
    const code = 'x = """first "line"\n# not a comment\n\'\'\' still\n""" + 1';
    expect(marked(code, "python")).toEqual([
      ["string", '"""first "line"\n# not a comment\n\'\'\' still\n"""'], ["number", "1"],
    ]);
    // unclosed: to the end, as Python would read it while it is being typed
    expect(of("string", "s = '''open\nreturn 1", "python")).toEqual(["'''open\nreturn 1"]);
  });

  it("reads prefixed strings and escaped quotes as one string", () => {
    const code = "a = f\"{n}!\" + rb'\\d' + 'it\\'s' + u\"x\"";
    expect(of("string", code, "python")).toEqual(['f"{n}!"', "rb'\\d'", "'it\\'s'", 'u"x"']);
    // a name ending in a prefix letter is still a name
    expect(of("string", "chr(65) + bar", "python")).toEqual([]);
  });

  it("marks a decorator at the start of a line, not the @ operator", () => {
    const code = "@functools.cache\ndef f(a, b):\n    @inner\n    def g(): pass\n    return a @ b";
    expect(of("decorator", code, "python")).toEqual(["@functools.cache", "@inner"]);
    expect(joined(code, "python")).toBe(code);
  });

  it("reads Python's number forms", () => {
    const code = "n = [0x1F, 0o17, 0b1010, 1_000_000, 3.14, .5, 2j, 1e-3]";
    expect(of("number", code, "python")).toEqual(["0x1F", "0o17", "0b1010", "1_000_000", "3.14", ".5", "2j", "1e-3"]);
  });

  it("marks a {{ }} template outside strings, and JavaScript's words are plain", () => {
    const code = "n = {{ trigger.data.n }}\nconst = null";
    expect(marked(code, "python")).toEqual([["template", "{{ trigger.data.n }}"]]);
  });
});

describe("languageOf", () => {
  it("is Python only when the config says so", () => {
    expect(languageOf("python")).toBe("python");
    expect(languageOf("javascript")).toBe("javascript");
    expect(languageOf(undefined)).toBe("javascript");
    expect(languageOf("{{ vars.lang }}")).toBe("javascript");
  });
});
