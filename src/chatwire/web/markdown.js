// A small Markdown renderer that builds DOM nodes: a model's text only ever becomes text
// nodes, so nothing in a reply can add markup, scripts or attributes. It knows what chat
// replies use: paragraphs, headings, lists, quotes, fenced code, inline code, bold,
// italics and links (http and https only). A fence still open renders as code, so a reply
// streaming in looks right at every moment.

import { h } from "./dom.js";

const FENCE = /^\s*(```|~~~)\s*([\w+#.-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s*>\s?(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;

/** The nodes of ``text`` rendered, in a fragment. */
export function render(text) {
  const out = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence
      out.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      out.append(h(`h${Math.min(heading[1].length + 2, 6)}`, {}, inline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.append(h("hr"));
      i += 1;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      const numbered = !BULLET.test(line);
      const pattern = numbered ? NUMBERED : BULLET;
      const first = numbered ? Number(NUMBERED.exec(line)[1]) : 1;
      const list = h(numbered ? "ol" : "ul", numbered && first !== 1 ? { start: first } : {});
      while (i < lines.length && pattern.test(lines[i])) {
        const match = pattern.exec(lines[i]);
        const item = [match[numbered ? 2 : 1]];
        i += 1;
        // Continuation lines: indented, not a new item nor a fence.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !pattern.test(lines[i])
               && !FENCE.test(lines[i])) {
          item.push(lines[i++].trim());
        }
        list.append(h("li", {}, inline(item.join("\n"))));
      }
      out.append(list);
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(QUOTE.exec(lines[i++])[1]);
      out.append(h("blockquote", {}, render(quoted.join("\n"))));
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) paragraph.push(lines[i++]);
    out.append(h("p", {}, inline(paragraph.join("\n"))));
  }
  return out;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || BULLET.test(line) || NUMBERED.test(line)
    || QUOTE.test(line) || RULE.test(line);
}

function codeBlock(code, language) {
  const copy = h("button", { type: "button", class: "copy quiet", "aria-label": "Copy code" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed";
    }
    setTimeout(() => { copy.textContent = "Copy"; }, 1500);
  });
  return h(
    "div",
    { class: "code" },
    h("div", { class: "code-head" }, h("span", {}, language || "code"), copy),
    h("pre", {}, h("code", language ? { "data-language": language } : {}, code)),
  );
}

// Inline spans, by the first of these to match at each point.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([\s\S]+?)\*\*|__([\s\S]+?)__|\*([^*\s][\s\S]*?)\*|\b_([^_\s][\s\S]*?)_\b|\[([^\]\n]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])|\n/g;

/** Inline Markdown as nodes (an array for append). */
export function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    last = match.index + match[0].length;
    const [whole, , code, bold1, bold2, em1, em2, label, href, bare] = match;
    if (code !== undefined) nodes.push(h("code", {}, code.trim() ? code : whole));
    else if (bold1 !== undefined || bold2 !== undefined) nodes.push(h("strong", {}, inline(bold1 ?? bold2)));
    else if (em1 !== undefined || em2 !== undefined) nodes.push(h("em", {}, inline(em1 ?? em2)));
    else if (label !== undefined) nodes.push(link(href, inline(label), whole));
    else if (bare !== undefined) nodes.push(link(bare, [bare], whole));
    else nodes.push(h("br"));
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

function link(href, children, whole) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return whole; // not an absolute URL: left as the text it was
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return whole;
  return h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer" }, children);
}
