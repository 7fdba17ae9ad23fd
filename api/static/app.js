// "Personalize Your News": the category catalog as toggles and the reader's feed, using only
// the public /v1 API with a bearer token. Vanilla JS, no build step, no external assets.
"use strict";

const TOKEN_KEY = "newsfeed.token";
const PAGE_SIZE = 20;
const IMPRESSION_FLUSH_MS = 3000;
const IMPRESSION_BATCH = 50;

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  userId: null,
  followed: new Set(),
  names: new Map(),
  cursor: null,
  loading: false,
  generation: 0, // bumped by every follow change: answers for an older feed are dropped
  position: 0,
  impressions: [],
  seen: new Set(),
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, { body, keepalive = false, auth = true } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    keepalive,
    cache: "no-cache", // revalidate with the feed's ETag: an unchanged page costs a 304
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && auth) signedOut(data);
    throw new ApiError(response.status, data);
  }
  return data;
}

// -- token

async function obtainToken() {
  const stored = localStorage.getItem(TOKEN_KEY);
  if (usable(stored)) return stored;
  const user = new URLSearchParams(location.search).get("user");
  const response = await fetch("/dev/token" + (user ? `?user=${encodeURIComponent(user)}` : ""));
  if (response.ok) return (await response.json()).token;
  return null; // not in development mode: ask for a token
}

function showTokenForm(message) {
  $("catalog").hidden = true;
  $("feed-section").hidden = true;
  $("token-form").hidden = false;
  $("token-error").textContent = message || "";
  $("token-input").focus();
}

function signedOut(body) {
  localStorage.removeItem(TOKEN_KEY);
  const why = (body && body.error && body.error.message) || "the token was refused";
  showTokenForm(`Signed out: ${why}. Paste a new token.`);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  if (!usable(token)) {
    $("token-error").textContent = "That is not a valid, unexpired token.";
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  $("token-form").hidden = true;
  start(token);
});

// -- categories

function categoryButton(category) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "category";
  button.dataset.slug = category.slug;
  button.setAttribute("aria-pressed", String(state.followed.has(category.slug)));
  const icon = document.createElement("span");
  icon.className = "icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = category.name.slice(0, 1).toUpperCase();
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = category.name;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = String(category.article_count);
  count.setAttribute("aria-label", `${category.article_count} articles`);
  button.append(icon, name, count);
  button.addEventListener("click", () => toggle(button));
  return button;
}

async function loadCatalog() {
  const [catalog, mine] = await Promise.all([
    api("GET", "/v1/categories", { auth: false }),
    api("GET", `/v1/users/${encodeURIComponent(state.userId)}/categories`),
  ]);
  state.followed = new Set(mine.categories);
  const box = $("categories");
  box.replaceChildren(
    ...catalog.categories.map((c) => {
      state.names.set(c.slug, c.name);
      return categoryButton(c);
    }),
  );
  box.setAttribute("aria-busy", "false");
}

async function toggle(button) {
  const slug = button.dataset.slug;
  const follow = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(follow)); // optimistic; the answer decides
  button.setAttribute("aria-busy", "true");
  try {
    const path = `/v1/users/${encodeURIComponent(state.userId)}/categories/${slug}`;
    const answer = await api(follow ? "PUT" : "DELETE", path);
    state.followed = new Set(answer.categories);
    await reloadFeed();
  } catch (error) {
    status(`Could not ${follow ? "follow" : "unfollow"} ${state.names.get(slug)}: ${error.message}`);
  } finally {
    button.removeAttribute("aria-busy");
    button.setAttribute("aria-pressed", String(state.followed.has(slug)));
  }
}

// -- feed

function status(text) {
  $("status").textContent = text;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "#";
  } catch (_) {
    return "#";
  }
}

function card(item, feedId, position) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.id = item.id;
  li.dataset.feedId = feedId;
  li.dataset.position = String(position);
  li.dataset.categories = item.categories.join(" ");
  const article = document.createElement("article");
  const heading = document.createElement("h3");
  const link = document.createElement("a");
  link.className = "title";
  link.href = safeUrl(item.url);
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.textContent = item.title;
  link.addEventListener("click", () => sendEvent("click", li));
  link.addEventListener("auxclick", (event) => {
    if (event.button === 1) sendEvent("click", li);
  });
  heading.append(link);
  const summary = document.createElement("p");
  summary.className = "summary";
  summary.textContent = item.summary;
  const meta = document.createElement("p");
  meta.className = "meta";
  const when = new Date(item.published_at);
  const names = item.categories.map((slug) => state.names.get(slug) || slug).join(", ");
  meta.textContent = [item.source, when.toLocaleString(), names].filter(Boolean).join(" · ");
  const reason = document.createElement("p");
  reason.className = "reason";
  reason.textContent = item.reason;
  const actions = document.createElement("div");
  actions.className = "actions";
  const hide = document.createElement("button");
  hide.type = "button";
  hide.className = "hide";
  hide.textContent = "Hide";
  hide.setAttribute("aria-label", `Hide “${item.title}”`);
  hide.addEventListener("click", () => hideCard(li));
  actions.append(hide);
  article.append(heading, summary, meta, reason, actions);
  li.append(article);
  return li;
}

async function loadPage() {
  if (state.loading) return;
  const generation = state.generation;
  const first = state.position === 0 && state.cursor === null;
  if (!first && !state.cursor) return;
  state.loading = true;
  $("feed").setAttribute("aria-busy", "true");
  status("Loading…");
  try {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.cursor) query.set("cursor", state.cursor);
    const page = await api("GET", `/v1/users/${encodeURIComponent(state.userId)}/feed?${query}`);
    if (generation !== state.generation) return; // the follows changed meanwhile
    const cards = page.items.map((item) => card(item, page.feed_id, state.position++));
    $("feed").append(...cards);
    cards.forEach((c) => impressionObserver.observe(c));
    state.cursor = page.next_cursor;
    $("more").hidden = !state.cursor;
    const total = $("feed").children.length;
    status(
      total === 0
        ? "Nothing to show yet."
        : `${total} stories${state.cursor ? "" : " — you have reached the end"}.`,
    );
  } catch (error) {
    if (generation === state.generation) {
      const retry = error.status === 429 || error.status === 503 ? " Retrying shortly." : "";
      status(`Could not load the feed: ${error.message}.${retry}`);
      if (retry) setTimeout(() => generation === state.generation && loadPage(), 2000);
    }
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      $("feed").setAttribute("aria-busy", "false");
      // Re-observe: if the end of the list is still in view, the observer fires again.
      moreObserver.unobserve($("more"));
      if (state.cursor) moreObserver.observe($("more"));
    }
  }
}

async function reloadFeed() {
  flushImpressions();
  state.generation += 1;
  state.cursor = null;
  state.position = 0;
  state.loading = false;
  $("feed").replaceChildren();
  $("more").hidden = true;
  await loadPage();
}

const moreObserver = new IntersectionObserver(
  (entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage();
  },
  { rootMargin: "0px 0px 400px 0px" },
);

$("more").addEventListener("click", () => loadPage());

// -- events

function event(type, li) {
  return {
    type,
    user_id: state.userId,
    article_id: li.dataset.id,
    feed_id: li.dataset.feedId,
    position: Number(li.dataset.position),
  };
}

function sendEvent(type, li) {
  // sendBeacon cannot carry the Authorization header; keepalive lets the request outlive
  // the page when the click navigates away.
  return api("POST", "/v1/events", { body: { events: [event(type, li)] }, keepalive: true }).catch(
    (error) => status(`Could not record the ${type}: ${error.message}`),
  );
}

async function hideCard(li) {
  const next = li.nextElementSibling || li.previousElementSibling;
  impressionObserver.unobserve(li);
  li.remove();
  const focusTarget = next ? next.querySelector("a.title") : $("feed-heading");
  focusTarget.focus();
  status("Story hidden; it will not come back.");
  await sendEvent("hide", li);
}

const impressionObserver = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const li = entry.target;
      impressionObserver.unobserve(li);
      const key = `${li.dataset.feedId}:${li.dataset.id}`;
      if (state.seen.has(key)) continue;
      state.seen.add(key);
      state.impressions.push(event("impression", li));
    }
    if (state.impressions.length >= IMPRESSION_BATCH) flushImpressions();
  },
  { threshold: 0.5 },
);

function flushImpressions() {
  while (state.impressions.length > 0) {
    const batch = state.impressions.splice(0, IMPRESSION_BATCH);
    api("POST", "/v1/events", { body: { events: batch }, keepalive: true }).catch(() => {});
  }
}

setInterval(flushImpressions, IMPRESSION_FLUSH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flushImpressions();
});
window.addEventListener("pagehide", flushImpressions);

// -- start

async function start(token) {
  state.token = token;
  state.userId = claims(token).sub;
  $("who").textContent = `Reading as ${state.userId}`;
  $("catalog").hidden = false;
  $("feed-section").hidden = false;
  try {
    await loadCatalog();
  } catch (error) {
    if (error.status !== 401) status(`Could not load the categories: ${error.message}`);
    return;
  }
  await reloadFeed();
}

obtainToken()
  .then((token) => (token ? start(token) : showTokenForm()))
  .catch((error) => showTokenForm(`Could not get a token: ${error.message}`));
