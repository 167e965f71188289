// Knowledge: RAG collections, ingesting pasted text or text files, and trying a query.

import { get, post, del, enc } from "../api.js";
import { h, mount, errorBox } from "../dom.js";

export async function render(main, route) {
  const collections = h("section", { class: "card", id: "collections" });
  const ingestResult = h("div", { id: "ingest-result", "aria-live": "polite" });
  const queryResult = h("div", { id: "query-results", "aria-live": "polite" });
  const initial = route.params.get("collection") || "docs";

  const ingestCollection = h("input", { id: "ingest-collection", value: initial, required: true, "aria-label": "Collection" });
  const ingestText = h("textarea", { id: "ingest-text", placeholder: "Paste text to ingest…" });
  const files = h("input", { id: "ingest-files", type: "file", multiple: true, accept: ".txt,.md,.markdown,.csv,.json,.yaml,.yml,.html,text/*" });
  const ingestForm = h("form", { class: "card", onsubmit: (event) => { event.preventDefault(); ingest(); } },
    h("h3", {}, "Ingest"),
    h("div", { class: "field" }, h("label", { for: "ingest-collection" }, "Collection"), ingestCollection),
    h("div", { class: "field" }, h("label", { for: "ingest-text" }, "Text"), ingestText),
    h("div", { class: "field" }, h("label", { for: "ingest-files" }, "…or text files"), files),
    h("button", { class: "primary", type: "submit", id: "ingest-submit" }, "Ingest"), ingestResult);

  const queryCollection = h("input", { id: "query-collection", value: initial, required: true, "aria-label": "Collection" });
  const queryText = h("input", { id: "query-text", type: "search", placeholder: "Ask the collection…", required: true, class: "wide" });
  const topK = h("input", { id: "query-top-k", type: "number", min: "1", max: "50", value: "5", class: "narrow" });
  const queryForm = h("form", { class: "card", onsubmit: (event) => { event.preventDefault(); query(); } },
    h("h3", {}, "Query"),
    h("div", { class: "field" }, h("label", { for: "query-collection" }, "Collection"), queryCollection),
    h("div", { class: "field" }, h("label", { for: "query-text" }, "Query"), queryText),
    h("div", { class: "field" }, h("label", { for: "query-top-k" }, "Top k"), topK),
    h("button", { class: "primary", type: "submit", id: "query-submit" }, "Search"), queryResult);

  mount(main, h("h1", {}, "Knowledge"), collections, h("div", { class: "grid spaced" }, ingestForm, queryForm));

  async function loadCollections() {
    try {
      const list = (await get("/v1/rag/collections")).collections || [];
      mount(collections, h("h3", {}, "Collections"), list.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Documents"), h("th", { class: "num" }, "Chunks"), h("th", {}, ""))),
        h("tbody", {}, list.map((collection) => h("tr", {},
          h("td", {}, h("button", { type: "button", title: "Use this collection",
            onclick: () => { ingestCollection.value = collection.name; queryCollection.value = collection.name; queryText.focus(); } }, collection.name)),
          h("td", { class: "num" }, collection.documents), h("td", { class: "num" }, collection.chunks),
          h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${collection.name}`,
            onclick: () => remove(collection.name) }, "Delete")))))))
        : h("p", { class: "muted" }, "No collections yet. Ingest some text below."));
    } catch (error) {
      mount(collections, h("h3", {}, "Collections"), errorBox(error));
    }
  }

  async function remove(name) {
    if (!window.confirm(`Delete collection ${name}?`)) return;
    try { await del(`/v1/rag/collections/${enc(name)}`); } catch (error) { collections.appendChild(errorBox(error)); return; }
    loadCollections();
  }

  async function ingest() {
    const documents = [];
    if (ingestText.value.trim()) documents.push({ text: ingestText.value, metadata: { source: "web-ui" } });
    for (const file of files.files) documents.push({ text: await file.text(), metadata: { source: file.name } });
    if (!documents.length) { mount(ingestResult, errorBox(new Error("Paste some text or choose a file first."))); return; }
    mount(ingestResult, h("p", { class: "muted" }, "Ingesting…"));
    try {
      const body = await post("/v1/rag/ingest", { collection: ingestCollection.value.trim(), documents });
      mount(ingestResult, h("p", { class: "pill ok" }, `${body.documents_ingested} document(s), ${body.chunks_created} chunk(s) ingested into ${body.collection}`));
      ingestText.value = "";
      files.value = "";
      loadCollections();
    } catch (error) {
      mount(ingestResult, errorBox(error));
    }
  }

  async function query() {
    mount(queryResult, h("p", { class: "muted" }, "Searching…"));
    try {
      const body = await post("/v1/rag/query", { collection: queryCollection.value.trim(), query: queryText.value, top_k: Number(topK.value) || 5 });
      const results = body.results || [];
      mount(queryResult, results.length ? results.map((hit) => h("div", { class: "chunk" },
        h("div", { class: "row spread" }, h("strong", { class: "score" }, `score ${Number(hit.score).toFixed(3)}`),
          hit.metadata && hit.metadata.source ? h("span", { class: "muted" }, hit.metadata.source) : null),
        h("div", { class: "chunk-text" }, hit.text)))
        : h("p", { class: "muted" }, "No chunk matched."));
    } catch (error) {
      mount(queryResult, errorBox(error));
    }
  }

  await loadCollections();
  const preset = route.params.get("q");
  if (preset) { queryText.value = preset; await query(); }
}
