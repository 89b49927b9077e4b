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

  // ---- math: small models write LaTeX (`\( 12.5\% \times 640 \)`) even when told not to;
  // a page without a math library shows it as readable text instead of raw commands.
  const SYMBOLS = {
    times: "\u00d7", div: "\u00f7", cdot: "\u00b7", pm: "\u00b1", approx: "\u2248", neq: "\u2260",
    ne: "\u2260", leq: "\u2264", le: "\u2264", geq: "\u2265", ge: "\u2265", pi: "\u03c0",
    infty: "\u221e", to: "\u2192", rightarrow: "\u2192", Rightarrow: "\u21d2", degree: "\u00b0",
    circ: "\u00b0", ldots: "\u2026", dots: "\u2026", cdots: "\u22ef", quad: " ", qquad: "  ",
    equiv: "\u2261", sum: "\u2211", prod: "\u220f", alpha: "\u03b1", beta: "\u03b2",
    theta: "\u03b8", mu: "\u03bc", Delta: "\u0394", sim: "~",
  };
  const SUPERSCRIPT = { "0": "\u2070", "1": "\u00b9", "2": "\u00b2", "3": "\u00b3", "4": "\u2074",
    "5": "\u2075", "6": "\u2076", "7": "\u2077", "8": "\u2078", "9": "\u2079", "-": "\u207b" };

  function grouped(text) {
    return /^[\w.\u00b0\u221a]+$/.test(text) ? text : "(" + text + ")";
  }

  // LaTeX (already HTML-escaped) -> plain text; never adds markup
  function mathText(tex) {
    let out = tex;
    for (let i = 0; i < 8; i++) { // innermost groups first, for nesting
      const before = out;
      out = out.replace(/\\(?:text|mathrm|textbf|mathbf|operatorname|textit|mbox)\s*\{([^{}]*)\}/g, "$1")
        .replace(/\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}/g, function (_, a, b) {
          return grouped(a.trim()) + "/" + grouped(b.trim());
        })
        .replace(/\\sqrt\s*\{([^{}]*)\}/g, function (_, a) { return "\u221a" + grouped(a.trim()); })
        .replace(/\^\s*\{([^{}]*)\}|\^([\w])/g, function (_, a, b) {
          const power = (a === undefined ? b : a).trim();
          if (/^-?\d+$/.test(power)) return power.split("").map(function (c) { return SUPERSCRIPT[c]; }).join("");
          return power === "\\circ" ? "\u00b0" : "^" + grouped(power);
        })
        .replace(/_\s*\{([^{}]*)\}/g, "_$1");
      if (out === before) break;
    }
    out = out.replace(/\\\\/g, " ")
      .replace(/\^\s*\\circ/g, "\u00b0")
      .replace(/\\(?:left|right|big|Big|displaystyle)\b\s*/g, "")
      .replace(/\\([%$#&_{}])/g, "$1")
      .replace(/\\[,;:> ]/g, " ").replace(/\\!/g, "")
      .replace(/\\([a-zA-Z]+)\s?/g, function (whole, name) {
        return Object.prototype.hasOwnProperty.call(SYMBOLS, name) ? SYMBOLS[name] + " " : name + " ";
      })
      .replace(/[{}]/g, "");
    return out.replace(/ +/g, " ").replace(/ ([,.;:)])/g, "$1").replace(/\( /g, "(").trim();
  }

  function math(escaped) {
    return escaped.replace(/\\\[([\s\S]+?)\\\]|\$\$([\s\S]+?)\$\$|\\\(([\s\S]+?)\\\)/g,
      function (_, display, dollars, inlineTex) {
        const tex = display !== undefined ? display : dollars !== undefined ? dollars : inlineTex;
        return '<span class="math">' + mathText(tex) + "</span>";
      });
  }

  function inline(escaped) {
    const codes = [];
    let out = escaped.replace(/`([^`\n]+)`/g, function (_, code) {
      codes.push("<code>" + code + "</code>");
      return "\u0000" + (codes.length - 1) + "\u0000";
    });
    out = math(out);
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

  // a display formula over several lines (`\[`, the formula, `\]`) becomes one line
  function joinMath(lines) {
    const out = [];
    let open = null;
    function count(line, re) { return (line.match(re) || []).length; }
    for (const line of lines) {
      if (open !== null) {
        open += " " + line.trim();
        if (count(line, /\\\]/g) > 0 || count(line, /\$\$/g) % 2 === 1) { out.push(open); open = null; }
      } else if (count(line, /\\\[/g) > count(line, /\\\]/g) || count(line, /\$\$/g) % 2 === 1) {
        open = line;
      } else {
        out.push(line);
      }
    }
    if (open !== null) out.push(open);
    return out;
  }

  function blocks(lines) {
    lines = joinMath(lines);
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
