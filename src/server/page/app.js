// Tessera's search page: framework-free, talks only to this server's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { indexes: [], last: null, lastRequest: null };

// Modes an index can run: one per first stage it holds, their union re-ranked by exact
// MaxSim, and their reciprocal-rank fusion (as `tessera search --mode`).
function modesFor(summary) {
  const c = new Set(summary.components);
  const stages = [];
  if (c.has("store")) stages.push("exhaustive");
  for (const s of ["plaid", "muvera", "splade", "bm25"]) if (c.has(s)) stages.push(s);
  const firsts = stages.filter((s) => s !== "exhaustive");
  const modes = [...stages];
  if (firsts.length > 1) {
    modes.push(firsts.join("+"));
    modes.push("rrf:" + firsts.join("+"));
  }
  return modes;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = null; }
  if (!r.ok) {
    const e = json && json.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${r.status}: ${text}`;
    throw new Error(e);
  }
  return json;
}

function currentSummary() {
  return state.indexes.find((i) => i.name === $("index").value);
}

function isReady(summary) {
  return summary && summary.status && summary.status.state === "ready";
}

// How far loading has got: "opening segments, 3/12 segments, 4 s".
function loadingDetail(s) {
  const segs = s.segments ? `, ${s.segments_done}/${s.segments} segments` : "";
  return `${s.step}${segs}, ${s.elapsed_s.toFixed(0)} s`;
}

// "name (5183 docs)", or how far loading has got.
function indexLabel(i) {
  const s = i.status || {};
  if (s.state === "loading") return `${i.name} (loading: ${loadingDetail(s)})`;
  if (s.state === "failed") return `${i.name} (failed to load)`;
  return `${i.name} (${i.num_docs} docs)`;
}

function fillIndexes() {
  const keep = $("index").value;
  $("index").replaceChildren(...state.indexes.map((i) => el("option", { value: i.name, textContent: indexLabel(i) })));
  if (keep && state.indexes.some((i) => i.name === keep)) $("index").value = keep;
}

// While the selected index is loading (or failed), say so and keep Search disabled.
function showReadiness() {
  const summary = currentSummary();
  const ready = isReady(summary);
  $("go").disabled = !ready;
  $("loading").hidden = ready || !summary;
  if (summary && !ready) {
    const s = summary.status || {};
    $("loading").textContent = s.state === "failed"
      ? `Index ${summary.name} failed to load: ${s.error}`
      : `Index ${summary.name} is still loading (${loadingDetail(s)}). Search is enabled once it is open.`;
  }
  return ready;
}

// Poll GET /indexes every second while any index is loading; then run `whenReady`.
async function pollLoading(whenReady) {
  while (state.indexes.some((i) => i.status && i.status.state === "loading")) {
    await new Promise((r) => setTimeout(r, 1000));
    try { state.indexes = await api("GET", "/indexes"); } catch { continue; }
    const mode = $("mode").value;
    fillIndexes();
    fillModes(mode);
    showReadiness();
  }
  if (whenReady) whenReady();
}

function fillModes(keep) {
  const summary = currentSummary();
  const select = $("mode");
  const components = (summary && summary.components) || [];
  select.replaceChildren(...(isReady(summary) ? modesFor(summary) : []).map((m) => el("option", { value: m, textContent: m })));
  if (keep && [...select.options].some((o) => o.value === keep)) select.value = keep;
  $("filter-box").hidden = !components.includes("fields");
}

function parseJsonField(id, what) {
  const raw = $(id).value.trim();
  if (!raw) return undefined;
  try { return JSON.parse(raw); } catch (e) { throw new Error(`${what} is not valid JSON: ${e.message}`); }
}

function buildRequest() {
  const body = { query: $("q").value, k: $("k").value === "" ? 10 : Number($("k").value), mode: $("mode").value, include_text: true };
  const params = parseJsonField("params", "params");
  if (params !== undefined) body.params = params;
  if (!$("filter-box").hidden) {
    const filter = parseJsonField("filter", "filter");
    if (filter !== undefined) body.filter = filter;
  }
  return body;
}

function queryTerms(q) {
  return [...new Set(q.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 1))];
}

// The first ~300 characters, the query's words marked (built as text nodes: no HTML from
// documents is ever interpreted).
function snippet(text, terms) {
  const cut = text.length > 300 ? text.slice(0, 300) + "…" : text;
  const out = el("div", { class: "snippet" });
  if (!terms.length) { out.textContent = cut; return out; }
  const re = new RegExp(`(${terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "giu");
  let at = 0;
  for (const m of cut.matchAll(re)) {
    out.append(cut.slice(at, m.index), el("mark", { textContent: m[0] }));
    at = m.index + m[0].length;
  }
  out.append(cut.slice(at));
  return out;
}

function renderResults(resp, request) {
  const list = $("results");
  const terms = queryTerms(request.query);
  list.replaceChildren(...resp.results.map((r) => {
    const button = el("button", { type: "button", class: "explain-btn", textContent: "explain" });
    const item = el("li", { class: "hit", "data-id": r.id },
      el("div", { class: "head" },
        el("span", { class: "rank", textContent: r.rank }),
        el("span", { class: "id", textContent: r.id }),
        el("span", { class: "score", textContent: r.score.toFixed(4) }),
        button),
      snippet(r.text || "", terms));
    button.addEventListener("click", () => toggleExplanation(item, request.query, r.id));
    return item;
  }));
  const n = resp.results.length;
  $("status").textContent =
    `${n} result${n === 1 ? "" : "s"} · ${resp.mode} · ${resp.took_ms.toFixed(1)} ms ` +
    `(query encoding ${resp.encode_ms.toFixed(1)} ms, search ${resp.search_ms.toFixed(1)} ms)` +
    (resp.query_truncated ? " · query cut to the model's length" : "") +
    (resp.approximate ? " · approximate scores (the index keeps no f16 vectors)" : "");
  $("raw").textContent = JSON.stringify(resp, null, 2);
  $("tools").hidden = false;
}

async function toggleExplanation(item, query, id) {
  const open = item.querySelector(".explanation");
  const p = new URLSearchParams(location.search);
  if (open) {
    open.remove();
    p.delete("explain");
    history.replaceState(null, "", `?${p}`);
    return;
  }
  p.set("explain", id);
  history.replaceState(null, "", `?${p}`);
  try {
    const e = await api("POST", `/indexes/${encodeURIComponent($("index").value)}/explain`, { query, id });
    item.append(renderExplanation(e));
  } catch (err) {
    showError(err.message);
  }
}

// The document's text with every token shaded by its vector's contribution; hovering a
// query token outlines the document tokens it matched.
function renderExplanation(e) {
  const box = el("div", { class: "explanation" });
  const maxC = Math.max(1e-9, ...e.document_vectors.map((v) => v.contribution));
  const qrow = el("div", { class: "qtokens" });
  e.query_tokens.forEach((t, i) => {
    const chip = el("span", { class: "qtok", "data-vector": t.matched_vector, "data-q": i, title: `matched vector ${t.matched_vector}` },
      t.token, el("small", { textContent: t.similarity.toFixed(3) }));
    chip.addEventListener("mouseenter", () => highlight(box, t.matched_vector, chip, true));
    chip.addEventListener("mouseleave", () => highlight(box, t.matched_vector, chip, false));
    qrow.append(chip);
  });
  const chars = Array.from(e.text);
  const owner = new Array(chars.length).fill(-1);
  e.document_vectors.forEach((v, vi) => {
    for (const t of v.tokens) if (t.chars) for (let c = t.chars.start; c < t.chars.end && c < chars.length; c++) owner[c] = vi;
  });
  const doc = el("div", { class: "doctext" });
  let c = 0;
  while (c < chars.length) {
    const vi = owner[c];
    let end = c + 1;
    while (end < chars.length && owner[end] === vi) end++;
    const piece = chars.slice(c, end).join("");
    if (vi < 0) doc.append(piece);
    else {
      const contribution = e.document_vectors[vi].contribution;
      const span = el("span", { class: "tok", "data-vector": vi, textContent: piece, title: `vector ${vi}: contribution ${contribution.toFixed(3)}` });
      if (contribution > 0) span.style.background = `rgba(255, 140, 0, ${(0.15 + 0.7 * contribution / maxC).toFixed(3)})`;
      doc.append(span);
    }
    c = end;
  }
  box.append(qrow, doc, el("div", { class: "sum", textContent:
    `sum of similarities ${e.sum_of_similarities.toFixed(4)} = MaxSim ${e.score.toFixed(4)} · pooling ${e.pooling}` }));
  return box;
}

function highlight(box, vector, chip, on) {
  chip.classList.toggle("active", on);
  for (const s of box.querySelectorAll(`.tok[data-vector="${vector}"]`)) s.classList.toggle("hl", on);
}

function curlFor(request) {
  const url = `${location.origin}/indexes/${encodeURIComponent($("index").value)}/search`;
  const body = JSON.stringify(request).replace(/'/g, "'\\''");
  return `curl -s ${url} -H 'content-type: application/json' -d '${body}'`;
}

function saveToUrl(request) {
  const p = new URLSearchParams({ index: $("index").value, q: request.query, mode: request.mode, k: request.k });
  if (request.params) p.set("params", JSON.stringify(request.params));
  if (request.filter) p.set("filter", JSON.stringify(request.filter));
  history.replaceState(null, "", `?${p}`);
}

async function search() {
  showError("");
  if (!showReadiness()) return;
  let request;
  try { request = buildRequest(); } catch (e) { showError(e.message); return; }
  saveToUrl(request);
  $("status").textContent = "searching…";
  try {
    const resp = await api("POST", `/indexes/${encodeURIComponent($("index").value)}/search`, request);
    state.last = resp;
    state.lastRequest = request;
    renderResults(resp, request);
    // ?explain=ID opens that result's explanation (a shareable link to it).
    const explainId = state.openExplain;
    state.openExplain = null;
    const item = explainId && [...$("results").children].find((li) => li.dataset.id === explainId);
    if (item) await toggleExplanation(item, request.query, explainId);
  } catch (e) {
    $("status").textContent = "";
    $("results").replaceChildren();
    $("tools").hidden = true;
    showError(e.message);
  }
}

async function init() {
  try {
    state.indexes = await api("GET", "/indexes");
  } catch (e) {
    showError(`cannot list indexes: ${e.message}`);
    return;
  }
  fillIndexes();
  const p = new URLSearchParams(location.search);
  if (p.get("index")) $("index").value = p.get("index");
  fillModes(p.get("mode"));
  showReadiness();
  if (p.get("k")) $("k").value = p.get("k");
  if (p.get("params")) { $("params").value = p.get("params"); }
  if (p.get("filter")) { $("filter").value = p.get("filter"); }
  if (p.get("params") || p.get("filter")) { $("advanced-toggle").checked = true; $("advanced").hidden = false; }
  $("index").addEventListener("change", () => { fillModes($("mode").value); showReadiness(); });
  $("advanced-toggle").addEventListener("change", (e) => { $("advanced").hidden = !e.target.checked; });
  $("raw-toggle").addEventListener("change", (e) => { $("raw").hidden = !e.target.checked; });
  $("curl").addEventListener("click", async () => {
    const text = curlFor(state.lastRequest);
    try { await navigator.clipboard.writeText(text); $("status").textContent += " · curl copied"; }
    catch { window.prompt("curl", text); }
  });
  $("form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  document.body.dataset.ready = "true";
  state.openExplain = p.get("explain");
  if (p.get("q")) $("q").value = p.get("q");
  // A shared link to an index that is still loading searches once it is open.
  pollLoading(() => { if (p.get("q") && isReady(currentSummary())) search(); });
}

init();
