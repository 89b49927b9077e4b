// The chat page: sends a message, renders the runtime's events streamed back over SSE.
(function () {
  "use strict";

  const $ = function (id) { return document.getElementById(id); };
  const messages = $("messages");
  const form = $("composer");
  const prompt = $("prompt");
  const sendButton = $("send");
  const stopButton = $("stop");
  const modelSelect = $("model");
  const chatList = $("chat-list");
  const statusLine = $("status");
  const sidebar = $("sidebar");
  const toggle = $("toggle-sidebar");

  const state = { conversation: null, turnId: null, busy: false, loadToken: 0 };

  function conversationFromHash() {
    const id = decodeURIComponent(location.hash.slice(1));
    return /^conv_[\w-]+$/.test(id) ? id : null;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scrollDown() { messages.scrollTop = messages.scrollHeight; }

  function setStatus(text) { statusLine.textContent = text || ""; }

  // ---- messages and tool cards -------------------------------------------------------

  function addUser(text) {
    const wrap = el("div", "msg user");
    wrap.appendChild(el("div", "bubble", text));
    messages.appendChild(wrap);
    scrollDown();
  }

  function addAssistant() {
    const wrap = el("div", "msg assistant");
    messages.appendChild(wrap);
    return { wrap: wrap, texts: {}, tools: {}, current: null };
  }

  function textBlock(turn, itemId) {
    let block = turn.texts[itemId];
    if (!block) {
      const node = el("div", "bubble");
      turn.wrap.appendChild(node);
      block = turn.texts[itemId] = { node: node, text: "", queued: false };
    }
    return block;
  }

  function renderText(block) {
    if (block.queued) return;
    block.queued = true;
    requestAnimationFrame(function () {
      block.queued = false;
      block.node.innerHTML = window.renderMarkdown(block.text);
      scrollDown();
    });
  }

  function toolCard(turn, callId, name) {
    let card = turn.tools[callId];
    if (!card) {
      const node = el("details", "tool");
      node.open = true;
      const summary = el("summary");
      summary.appendChild(el("span", "badge", "tool"));
      const nameNode = el("span", "name", name || "tool");
      const stateNode = el("span", "state", "calling…");
      summary.appendChild(nameNode);
      summary.appendChild(stateNode);
      node.appendChild(summary);
      const dl = el("dl");
      dl.appendChild(el("dt", "", "Arguments"));
      const args = el("pre", "args");
      const dd = el("dd");
      dd.appendChild(args);
      dl.appendChild(dd);
      node.appendChild(dl);
      turn.wrap.appendChild(node);
      card = turn.tools[callId] = { node: node, dl: dl, args: args, stateNode: stateNode,
        nameNode: nameNode, raw: "", result: null };
      node.dataset.callId = callId;
      scrollDown();
    }
    return card;
  }

  function pretty(raw) {
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch (e) { return raw; }
  }

  function setResult(card, output, isError, duration) {
    if (!card.result) {
      card.dl.appendChild(el("dt", "", isError ? "Error" : "Result"));
      const dd = el("dd");
      card.result = el("pre", "result");
      dd.appendChild(card.result);
      card.dl.appendChild(dd);
    }
    card.result.textContent = output;
    card.node.classList.add(isError ? "error" : "ok");
    const took = duration === undefined ? "" : " in " + formatDuration(duration);
    card.stateNode.textContent = (isError ? "failed" : "done") + took;
    scrollDown();
  }

  function formatDuration(seconds) {
    if (seconds < 0.001) return "<1 ms";
    return seconds < 1 ? Math.round(seconds * 1000) + " ms" : seconds.toFixed(1) + " s";
  }

  function addNote(turn, text, isError) {
    turn.wrap.appendChild(el("p", isError ? "note error" : "note", text));
    scrollDown();
  }

  // ---- one turn over SSE --------------------------------------------------------------

  function handle(turn, event) {
    switch (event.type) {
      case "turn":
        state.turnId = event.turn_id;
        if (state.conversation !== event.conversation) {
          state.conversation = event.conversation;
          history.replaceState(null, "", "#" + event.conversation);
          refreshChats();
        }
        break;
      case "turn_queued":
        // every slot of the model is busy: the server holds the turn until one frees
        setStatus(event.waiting ? "Waiting for a free slot…" : "");
        break;
      case "text_delta": {
        const block = textBlock(turn, event.item_id);
        block.text += event.text;
        renderText(block);
        break;
      }
      case "text_done": {
        const block = textBlock(turn, event.item_id);
        block.text = event.text;
        renderText(block);
        break;
      }
      case "tool_call_started":
        toolCard(turn, event.call_id, event.name);
        break;
      case "tool_arguments_delta": {
        const card = toolCard(turn, event.call_id);
        card.raw += event.delta;
        card.args.textContent = card.raw;
        break;
      }
      case "tool_call_ready": {
        const card = toolCard(turn, event.call_id, event.name);
        card.raw = event.raw_arguments;
        card.args.textContent = pretty(event.raw_arguments);
        card.stateNode.textContent = "running…";
        break;
      }
      case "tool_progress":
        toolCard(turn, event.call_id, event.name).stateNode.textContent = event.message;
        break;
      case "tool_result":
        setResult(toolCard(turn, event.call_id, event.name), event.output, event.is_error,
          event.duration);
        break;
      case "turn_completed":
        if (event.status === "incomplete") addNote(turn, "The answer was cut short (incomplete).");
        break;
      case "cancelled":
        addNote(turn, "Stopped.");
        break;
      case "error":
        addNote(turn, "Error: " + event.message, true);
        break;
      default:
        break;
    }
  }

  async function send(text) {
    const model = modelSelect.value;
    if (!model) { setStatus("No model available."); return; }
    addUser(text);
    const turn = addAssistant();
    const typing = el("p", "typing");
    typing.setAttribute("aria-label", "Waiting for the answer");
    turn.wrap.appendChild(typing);
    setBusy(true);
    if (loading.states[model] === "on_first_use") loading.timer = setTimeout(watchLoading, 300);
    try {
      const response = await fetch("/chat/api/turn", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
        body: JSON.stringify({ message: text, model: model, conversation: state.conversation }),
      });
      if (!response.ok || !response.body) {
        typing.remove();
        addNote(turn, "Error: the server answered " + response.status + ".", true);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split("\n").filter(function (l) { return l.startsWith("data:"); })
            .map(function (l) { return l.slice(5).trimStart(); }).join("\n");
          if (!data) continue;
          if (typing.isConnected) typing.remove();
          handle(turn, JSON.parse(data));
        }
      }
    } catch (err) {
      addNote(turn, "Error: " + err.message, true);
    } finally {
      if (typing.isConnected) typing.remove();
      setBusy(false);
      refreshChats();
    }
  }

  function setBusy(busy) {
    state.busy = busy;
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
    stopButton.disabled = false;
    if (!busy) {
      state.turnId = null;
      setStatus("");
      prompt.focus();
    }
  }

  async function stop() {
    if (!state.turnId) return;
    stopButton.disabled = true;
    setStatus("Stopping…");
    await fetch("/chat/api/turn/" + encodeURIComponent(state.turnId) + "/cancel", { method: "POST" });
  }

  // ---- history and the sidebar -----------------------------------------------------------

  function outputText(content) {
    if (typeof content === "string") return content;
    return (content || []).map(function (part) {
      return part.text || part.refusal || (part.type === "input_image" ? "[image]" : "");
    }).join("");
  }

  async function loadHistory(conversation) {
    const token = ++state.loadToken;
    messages.replaceChildren();
    if (!conversation) return;
    setStatus("Loading the conversation…");
    const items = [];
    let after = null;
    for (;;) {
      const query = "?order=asc&limit=100" + (after ? "&after=" + encodeURIComponent(after) : "");
      const response = await fetch("/v1/conversations/" + encodeURIComponent(conversation) + "/items" + query);
      if (token !== state.loadToken) return;
      if (!response.ok) {
        setStatus(response.status === 404 ? "That conversation no longer exists." : "Could not load the conversation.");
        if (response.status === 404) {
          await fetch("/chat/api/conversations/" + encodeURIComponent(conversation), { method: "DELETE" });
          state.conversation = null;
          history.replaceState(null, "", location.pathname);
          refreshChats();
        }
        return;
      }
      const page = await response.json();
      items.push.apply(items, page.data);
      if (!page.has_more || !page.data.length) break;
      after = page.data[page.data.length - 1].id;
    }
    let turn = null;
    for (const item of items) {
      if (item.type === "message" && item.role === "user") {
        addUser(outputText(item.content));
        turn = null;
      } else if (item.type === "message" && item.role === "assistant") {
        turn = turn || addAssistant();
        const block = textBlock(turn, item.id);
        block.text = outputText(item.content);
        block.node.innerHTML = window.renderMarkdown(block.text);
      } else if (item.type === "function_call") {
        turn = turn || addAssistant();
        const card = toolCard(turn, item.call_id, item.name);
        card.args.textContent = pretty(item.arguments || "");
        card.stateNode.textContent = "no result";
        card.node.open = false;
      } else if (item.type === "function_call_output") {
        turn = turn || addAssistant();
        const card = toolCard(turn, item.call_id, "tool");
        const output = typeof item.output === "string" ? item.output : JSON.stringify(item.output);
        setResult(card, output, /^Error/.test(output));
      }
    }
    setStatus("");
    scrollDown();
  }

  async function refreshChats() {
    const response = await fetch("/chat/api/conversations");
    if (!response.ok) return;
    const body = await response.json();
    chatList.replaceChildren();
    for (const chat of body.data) {
      const li = el("li");
      const a = el("a", "", chat.title || chat.id);
      a.href = "#" + chat.id;
      a.title = chat.title;
      if (chat.id === state.conversation) a.setAttribute("aria-current", "page");
      li.appendChild(a);
      chatList.appendChild(li);
    }
  }

  // ---- login: the key lives in an HttpOnly cookie the page cannot read --------------------

  function askForKey() {
    const dialog = $("login");
    if (!dialog.open) dialog.showModal();
    $("login-key").focus();
  }

  $("login-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const response = await fetch("/chat/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: $("login-key").value }),
    });
    if (!response.ok) {
      $("login-error").textContent = "That key was not accepted.";
      return;
    }
    $("login-key").value = "";
    $("login").close();
    loadModels().then(watchLoading);
    loadTools();
    refreshChats();
    loadHistory(state.conversation);
  });

  async function loadModels() {
    const response = await fetch("/v1/models");
    if (response.status === 401) {
      askForKey();
      return;
    }
    const names = response.ok ? (await response.json()).data.map(function (m) { return m.id; }) : [];
    const saved = localStorage.getItem("turnstream.model");
    const choice = names.includes(saved) ? saved
      : names.includes("local") ? "local"
      : names.find(function (n) { return n !== "echo"; }) || names[0] || "";
    modelSelect.replaceChildren();
    for (const name of names) {
      const option = el("option", "", name);
      option.value = name;
      modelSelect.appendChild(option);
    }
    modelSelect.value = choice;
  }

  async function loadTools() {
    const response = await fetch("/chat/api/tools");
    if (!response.ok) return;
    const body = await response.json();
    $("tool-names").textContent = body.data.map(function (t) { return t.name; }).join(", ") || "none";
  }

  function openConversation() {
    if (state.busy) return;
    state.conversation = conversationFromHash();
    closeSidebar();
    loadHistory(state.conversation);
    refreshChats();
  }

  function closeSidebar() {
    sidebar.classList.remove("open");
    toggle.setAttribute("aria-expanded", "false");
  }

  // ---- the model loading (the server loads it in the background) ----------------------------

  // states: each model's last `/readyz` state; one that loads on its first use
  // ("on_first_use", the terminal chat's second model) begins loading when sent to
  const loading = { timer: null, shown: false, states: {} };

  async function watchLoading() {
    clearTimeout(loading.timer);
    const model = modelSelect.value;
    let body = null;
    try {
      body = await (await fetch("/readyz", { cache: "no-store" })).json();
    } catch (err) {
      body = null;
    }
    const models = (body && body.checks && body.checks.models) || {};
    loading.states = models;
    if (model && model === modelSelect.value && models[model] === "loading") {
      const share = Math.round(100 * (((body.load_progress || {})[model]) || 0));
      $("load-bar").value = share;
      $("load-label").textContent = "Loading " + model + "… " + share + "%";
      $("loading").hidden = false;
      loading.shown = true;
      loading.timer = setTimeout(watchLoading, 500);
      return;
    }
    $("loading").hidden = true;
    // the turn that began the load goes on to its answer; the line clears when it ends
    if (loading.shown && models[model] === "ready") {
      setStatus("The model " + model + " is ready.");
    }
    loading.shown = false;
  }

  // ---- wiring -------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.busy) return;
    prompt.value = "";
    send(text);
  });
  prompt.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", stop);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && state.busy) stop();
    else if (event.key === "Escape") closeSidebar();
  });
  modelSelect.addEventListener("change", function () {
    localStorage.setItem("turnstream.model", modelSelect.value);
    watchLoading();
  });
  $("new-chat").addEventListener("click", function () {
    if (state.busy) return;
    history.pushState(null, "", location.pathname);
    openConversation();
    prompt.focus();
  });
  toggle.addEventListener("click", function () {
    const open = sidebar.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  });
  window.addEventListener("hashchange", openConversation);

  state.conversation = conversationFromHash();
  loadModels().then(watchLoading);
  loadTools();
  refreshChats();
  loadHistory(state.conversation);
  prompt.focus();
})();
