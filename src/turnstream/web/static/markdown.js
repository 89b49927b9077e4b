// A small, safe Markdown renderer for model output (no dependencies).
// Safety by construction: the text is HTML-escaped FIRST, and the only markup added
// afterwards is a fixed set of tags; link targets must be http(s) or mailto.
// Unfinished input (a fence still open while streaming) renders sensibly.
(function () {
  "use strict";

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function inline(escaped) {
    const codes = [];
    let out = escaped.replace(/`([^`\n]+)`/g, function (_, code) {
      codes.push("<code>" + code + "</code>");
      return "\u0000" + (codes.length - 1) + "\u0000";
    });
    out = out.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, function (whole, label, url) {
      if (!/^(https?:|mailto:)/i.test(url)) return whole;
      return '<a href="' + url + '" rel="noopener noreferrer" target="_blank">' + label + "</a>";
    });
    out = out.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/__([^_\n]+)__/g, "<strong>$1</strong>")
      .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
      .replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>")
      .replace(/~~([^~\n]+)~~/g, "<del>$1</del>");
    return out.replace(/\u0000(\d+)\u0000/g, function (_, i) { return codes[Number(i)]; });
  }

  function blocks(lines) {
    const html = [];
    let para = [];
    let list = null; // {tag, items}
    let quote = [];
    function flushPara() {
      if (para.length) html.push("<p>" + para.map(inline).join("<br>") + "</p>");
      para = [];
    }
    function flushList() {
      if (list) {
        html.push("<" + list.tag + ">" + list.items.map(function (item) {
          return "<li>" + inline(item) + "</li>";
        }).join("") + "</" + list.tag + ">");
      }
      list = null;
    }
    function flushQuote() {
      if (quote.length) html.push("<blockquote>" + blocks(quote) + "</blockquote>");
      quote = [];
    }
    function flushAll() { flushPara(); flushList(); flushQuote(); }
    for (const line of lines) {
      let m;
      if ((m = /^&gt;\s?(.*)$/.exec(line))) { flushPara(); flushList(); quote.push(m[1]); continue; }
      flushQuote();
      if (/^\s*$/.test(line)) { flushPara(); flushList(); continue; }
      if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flushAll();
        const level = Math.min(m[1].length + 2, 6); // keep headings below the page's own
        html.push("<h" + level + ">" + inline(m[2]) + "</h" + level + ">");
        continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flushAll(); html.push("<hr>"); continue; }
      if ((m = /^\s*[-*+]\s+(.*)$/.exec(line)) || (m = /^\s*\d+[.)]\s+(.*)$/.exec(line))) {
        const tag = /^\s*\d/.test(line) ? "ol" : "ul";
        flushPara();
        if (!list || list.tag !== tag) { flushList(); list = { tag: tag, items: [] }; }
        list.items.push(m[1]);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) { list.items[list.items.length - 1] += " " + line.trim(); continue; }
      flushList();
      para.push(line);
    }
    flushAll();
    return html.join("");
  }

  function renderMarkdown(text) {
    const lines = escapeHtml(text).split("\n");
    const html = [];
    let pending = [];
    let code = null; // {lang, lines}
    for (const line of lines) {
      const fence = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line);
      if (code) {
        if (fence && fence[1] === code.fence) {
          html.push(codeBlock(code));
          code = null;
        } else {
          code.lines.push(line);
        }
      } else if (fence) {
        html.push(blocks(pending));
        pending = [];
        code = { fence: fence[1], lang: fence[2], lines: [] };
      } else {
        pending.push(line);
      }
    }
    if (code) html.push(codeBlock(code));
    html.push(blocks(pending));
    return html.join("");
  }

  function codeBlock(code) {
    const cls = code.lang ? ' class="language-' + code.lang + '"' : "";
    return "<pre><code" + cls + ">" + code.lines.join("\n") + "</code></pre>";
  }

  window.renderMarkdown = renderMarkdown;
  window.escapeHtml = escapeHtml;
})();
