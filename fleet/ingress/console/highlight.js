// A tiny Python highlighter: keywords, builtins, strings, comments, numbers, decorators. It only
// wraps tokens in <span class="tok-..."> text nodes; anything it does not know stays plain text.
// (Chosen over a vendored library: model code is short, Python only, and this is 40 lines.)
import { h } from "./dom.js";

const KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else except " +
  "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case").split(" "));
const BUILTINS = new Set(("print len range int str float list dict set tuple bool isinstance enumerate zip map " +
  "filter sorted min max sum abs any all open super object type self cls").split(" "));
const TOKEN = new RegExp([
  String.raw`(?<comment>#[^\n]*)`,
  String.raw`(?<string>[rbfuRBFU]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))`,
  String.raw`(?<deco>@[\w.]+)`,
  String.raw`(?<number>\b\d[\d_]*(?:\.\d+)?(?:e[+-]?\d+)?\b)`,
  String.raw`(?<word>\b[A-Za-z_]\w*\b)`,
].join("|"), "g");

export function highlightPython(code) {
  const out = h("code", { class: "language-python" });
  let last = 0;
  for (const m of code.matchAll(TOKEN)) {
    const [kind, text] = Object.entries(m.groups).find(([, v]) => v !== undefined);
    let cls = kind === "word" ? (KEYWORDS.has(text) ? "kw" : BUILTINS.has(text) ? "bi" : null) : kind;
    if (kind === "word" && !cls && /\b(def|class)\s+$/.test(code.slice(Math.max(0, m.index - 10), m.index))) cls = "fn";
    if (!cls) continue;
    out.append(code.slice(last, m.index), h("span", { class: `tok-${cls}` }, text));
    last = m.index + text.length;
  }
  out.append(code.slice(last));
  return out;
}

// A model's answer: prose as folded text, each fenced code block highlighted.
export function renderAnswer(text, key) {
  const parts = [];
  const fence = /```([\w+-]*)\n([\s\S]*?)(?:```|$)/g;
  let last = 0;
  for (const m of text.matchAll(fence)) {
    const prose = text.slice(last, m.index).trim();
    if (prose) parts.push(prose);
    parts.push({ lang: m[1] || "python", code: m[2].replace(/\n$/, "") });
    last = m.index + m[0].length;
  }
  const rest = text.slice(last).trim();
  if (rest) parts.push(rest);
  return parts.map((part, i) => typeof part === "string"
    ? h("details", { "data-key": `${key}-t${i}`, class: "prose" }, h("summary", {}, part.split("\n")[0].slice(0, 100)),
      h("pre", { class: "text" }, part))
    : h("pre", { class: "code" }, part.lang.startsWith("py") ? highlightPython(part.code) : h("code", {}, part.code)));
}
