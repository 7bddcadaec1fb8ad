// The chat page: a model picker, the conversation (the reply streams in as it arrives),
// Stop, Retry, New chat, past chats kept on the server, and images for models that take them.

import { ApiError, call, json } from "./api.js";
import { clear, field, h } from "./dom.js";
import { render } from "./markdown.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGE_BYTES = 4 * 1024 * 1024;
const PROVIDER_NAMES = {
  openai: "OpenAI", azure: "Azure OpenAI", anthropic: "Anthropic", google: "Google Gemini",
  mistral: "Mistral", groq: "Groq", perplexity: "Perplexity", openrouter: "OpenRouter",
  ollama: "Ollama", deepseek: "DeepSeek", xai: "xAI", together: "Together",
  fireworks: "Fireworks", cerebras: "Cerebras", custom: "Your custom models",
};

export async function chatPage(main) {
  const state = {
    models: new Map(), // option value -> model entry
    chat: null, // {id, title, model, messages}
    controller: null,
    images: [],
  };

  const picker = h("select", { id: "model", name: "model" });
  const chatList = h("ul", { class: "chats", id: "chat-list" });
  const log = h("div", { class: "log", id: "log", role: "log", "aria-live": "polite" });
  const prompt = h("textarea", {
    id: "prompt", name: "prompt", rows: 3, required: true,
    placeholder: "Message (Enter sends, Shift+Enter for a new line)",
  });
  const attach = h("input", { type: "file", id: "attach", accept: IMAGE_TYPES.join(","), multiple: true });
  const attachField = h("label", { class: "attach", for: "attach" }, "Attach images", attach);
  const thumbs = h("div", { class: "thumbs", id: "thumbs" });
  const send = h("button", { type: "submit", id: "send" }, "Send");
  const stop = h("button", { type: "button", id: "stop", class: "danger", hidden: true }, "Stop");
  const retry = h("button", { type: "button", id: "retry", class: "quiet", hidden: true }, "Retry");
  const notice = h("p", { class: "notice", id: "notice", role: "status" });
  const form = h(
    "form",
    { class: "composer", id: "composer" },
    h("label", { for: "prompt", class: "visually-hidden" }, "Message"),
    prompt,
    thumbs,
    h("div", { class: "actions" }, attachField, retry, stop, send),
  );
  const newChat = h("button", { type: "button", id: "new-chat" }, "New chat");

  clear(main).append(
    h(
      "div",
      { class: "chat-page" },
      h(
        "aside",
        { class: "sidebar", "aria-label": "Past chats" },
        newChat,
        h("h2", { class: "small-title" }, "Past chats"),
        chatList,
      ),
      h(
        "section",
        { class: "conversation", "aria-label": "Conversation" },
        h("div", { class: "model-bar" }, field("Model", picker)),
        notice,
        log,
        form,
      ),
    ),
  );

  // Models

  async function loadModels() {
    const grouped = await json("GET", "/api/models");
    clear(picker);
    state.models.clear();
    for (const [provider, entries] of Object.entries(grouped)) {
      if (!entries.length) continue;
      const group = h("optgroup", { label: PROVIDER_NAMES[provider] || provider });
      for (const entry of entries) {
        const value = `${provider}/${entry.hostedId}`;
        state.models.set(value, entry);
        group.append(h("option", { value }, entry.modelName));
      }
      picker.append(group);
    }
    if (!state.models.size) {
      picker.append(h("option", { value: "" }, "No models: set a provider key in Settings"));
      picker.disabled = true;
    }
    const saved = localStorage.getItem("chatwire.model");
    if (saved && state.models.has(saved)) picker.value = saved;
    modelChanged();
  }

  function modelChanged() {
    const entry = state.models.get(picker.value);
    attachField.hidden = !(entry && entry.imageInput);
    if (attachField.hidden) {
      state.images = [];
      showThumbs();
    }
    if (picker.value) localStorage.setItem("chatwire.model", picker.value);
  }
  picker.addEventListener("change", modelChanged);

  // Past chats

  async function loadChats() {
    const chats = await json("GET", "/api/chats");
    clear(chatList);
    if (!chats.length) chatList.append(h("li", { class: "empty" }, "None yet"));
    for (const chat of chats) {
      const current = state.chat && state.chat.id === chat.id;
      chatList.append(
        h(
          "li",
          { class: current ? "current" : "" },
          h("button", {
            type: "button", class: "open-chat", "aria-current": current ? "true" : null,
            onclick: () => openChat(chat.id),
          }, chat.title),
          h("button", {
            type: "button", class: "delete-chat quiet", "aria-label": `Delete chat ${chat.title}`,
            onclick: () => deleteChat(chat),
          }, "✕"),
        ),
      );
    }
  }

  async function openChat(id) {
    if (state.controller) return;
    try {
      state.chat = await json("GET", `/api/chats/${id}`);
    } catch (error) {
      return say(error.message);
    }
    if (state.models.has(state.chat.model)) picker.value = state.chat.model;
    modelChanged();
    showLog();
    await loadChats();
    prompt.focus();
  }

  async function deleteChat(chat) {
    if (!confirm(`Delete the chat "${chat.title}"?`)) return;
    try {
      await json("DELETE", `/api/chats/${chat.id}`);
    } catch (error) {
      return say(error.message);
    }
    if (state.chat && state.chat.id === chat.id) startNew();
    await loadChats();
  }

  function startNew() {
    if (state.controller) state.controller.abort();
    state.chat = null;
    state.images = [];
    showThumbs();
    showLog();
    loadChats().catch((error) => say(error.message));
    prompt.focus();
  }
  newChat.addEventListener("click", startNew);

  // ``chat`` may no longer be the one shown (New chat during a reply): it is saved all the same.
  async function save(chat) {
    const messages = chat.messages.filter((m) => !m.error);
    if (chat.id) {
      await json("PATCH", `/api/chats/${chat.id}`, { messages, model: chat.model });
    } else {
      const made = await json("POST", "/api/chats", { title: chat.title, model: chat.model, messages });
      chat.id = made.id;
    }
    await loadChats();
  }

  // The conversation

  function say(text) {
    notice.textContent = text || "";
  }

  function bubble(message) {
    const body = h("div", { class: "body" });
    if (message.role === "assistant") body.append(render(message.content));
    else body.append(h("p", { class: "plain" }, message.content));
    if (message.error) body.append(h("p", { class: "error", role: "alert" }, message.error));
    for (const url of message.images || []) body.append(h("img", { src: url, alt: "attached image" }));
    if (message.stopped) body.append(h("p", { class: "stopped" }, "Stopped."));
    return h(
      "article",
      { class: `message ${message.role}${message.error ? " failed" : ""}` },
      h("h3", { class: "who" }, message.role === "user" ? "You" : "Assistant"),
      body,
    );
  }

  function showLog() {
    clear(log);
    const messages = state.chat ? state.chat.messages : [];
    if (!messages.length) log.append(h("p", { class: "empty" }, "Ask anything to start a chat."));
    for (const message of messages) log.append(bubble(message));
    const last = messages[messages.length - 1];
    retry.hidden = !last || last.role !== "assistant" || Boolean(state.controller);
    log.scrollTop = log.scrollHeight;
  }

  function requestBody(entry, provider, messages) {
    const wire = messages.filter((m) => !m.error).map((m) => ({
      role: m.role,
      content: m.images && m.images.length
        ? [{ type: "text", text: m.content },
           ...m.images.map((url) => ({ type: "image_url", image_url: { url } }))]
        : m.content,
    }));
    const body = { chatSettings: { model: entry.modelId }, messages: wire };
    if (provider === "custom") body.customModelId = entry.hostedId;
    return body;
  }

  async function reply() {
    const chat = state.chat;
    const value = chat.model;
    const entry = state.models.get(value);
    if (!entry) {
      say("That chat's model is not available any more: pick another one.");
      return;
    }
    const provider = value.slice(0, value.indexOf("/"));
    const answer = { role: "assistant", content: "" };
    const body = requestBody(entry, provider, chat.messages);
    chat.messages.push(answer);
    state.controller = new AbortController();
    busy(true);
    showLog();
    const view = log.lastElementChild.querySelector(".body");
    let scheduled = false;
    const paint = () => {
      scheduled = false;
      view.replaceChildren(render(answer.content));
      log.scrollTop = log.scrollHeight;
    };
    try {
      const response = await call("POST", `/api/chat/${encodeURIComponent(provider)}`, body, {
        signal: state.controller.signal,
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value: piece, done } = await reader.read();
        if (done) break;
        answer.content += piece;
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(paint);
        }
      }
    } catch (error) {
      if (error.name === "AbortError") answer.stopped = true;
      else if (error instanceof ApiError) answer.error = error.message;
      else answer.error = answer.content
        ? "The reply was cut off before its end (the provider or the connection failed)."
        : `The reply failed: ${error.message}`;
    } finally {
      state.controller = null;
      busy(false);
    }
    if (state.chat === chat) showLog();
    try {
      await save(chat);
    } catch (error) {
      say(`The chat was not saved: ${error.message}`);
    }
  }

  function busy(on) {
    stop.hidden = !on;
    send.disabled = on;
    retry.hidden = true;
    if (on) stop.focus();
    else prompt.focus();
  }

  stop.addEventListener("click", () => {
    if (state.controller) state.controller.abort();
  });

  retry.addEventListener("click", async () => {
    const messages = state.chat.messages;
    while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
    state.chat.model = picker.value || state.chat.model;
    await reply();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.controller) return;
    if (!picker.value) {
      say("Pick a model first (set a provider key in Settings if there is none).");
      return;
    }
    say("");
    if (!state.chat) {
      state.chat = { id: null, title: text.slice(0, 80), model: picker.value, messages: [] };
    }
    state.chat.model = picker.value;
    state.chat.messages.push({ role: "user", content: text, images: state.images });
    state.images = [];
    showThumbs();
    prompt.value = "";
    await reply();
  });

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // Images

  function showThumbs() {
    clear(thumbs);
    state.images.forEach((url, index) => {
      thumbs.append(
        h(
          "span",
          { class: "thumb" },
          h("img", { src: url, alt: `attachment ${index + 1}` }),
          h("button", {
            type: "button", class: "quiet", "aria-label": `Remove attachment ${index + 1}`,
            onclick: () => { state.images.splice(index, 1); showThumbs(); },
          }, "✕"),
        ),
      );
    });
  }

  attach.addEventListener("change", async () => {
    for (const file of attach.files) {
      if (!IMAGE_TYPES.includes(file.type)) {
        say(`${file.name}: only PNG, JPEG, GIF and WebP images can be attached.`);
        continue;
      }
      if (file.size > MAX_IMAGE_BYTES) {
        say(`${file.name} is larger than 4 MiB.`);
        continue;
      }
      state.images.push(await dataURL(file));
    }
    attach.value = "";
    showThumbs();
  });

  try {
    await Promise.all([loadModels(), loadChats()]);
  } catch (error) {
    say(error.message);
  }
  showLog();
  prompt.focus();
}

function dataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
