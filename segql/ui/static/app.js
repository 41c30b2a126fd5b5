// segql ui: the few things a page does without a reload. Plain fetch, no build step.
// Fragments from the server (the builder's result) are rendered by jinja2 with
// autoescaping; everything this script writes itself goes through textContent.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      return { ok: false, error: text || response.statusText };
    }
  }

  function say(element, data, link) {
    element.replaceChildren();
    element.className = "message " + (data.ok ? "ok" : "bad");
    const text = document.createElement(data.ok ? "span" : "pre");
    text.textContent = data.ok ? data.message : data.error;
    element.append(text);
    if (data.ok && link) {
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = " open it";
      anchor.dataset.role = "saved-link";
      element.append(anchor);
    }
  }

  function fields(form) {
    const found = {};
    for (const [key, value] of new FormData(form).entries()) found[key] = String(value);
    return found;
  }

  // --- the overview: search and tag filter over the rows -------------------------------
  const filters = document.querySelector('[data-role="filters"]');
  if (filters) {
    const search = filters.querySelector('[data-role="search"]');
    const tag = filters.querySelector('[data-role="tag"]');
    const rows = document.querySelectorAll('[data-role="segment-row"]');
    const shown = document.querySelector('[data-role="shown"]');
    const apply = function () {
      const wanted = search.value.trim().toLowerCase();
      const chosen = tag.value;
      let count = 0;
      for (const row of rows) {
        const tags = row.dataset.tags ? row.dataset.tags.split(",") : [];
        const visible = row.dataset.search.includes(wanted) && (!chosen || tags.includes(chosen));
        row.hidden = !visible;
        if (visible) count += 1;
      }
      if (shown) shown.textContent = String(count);
      const url = new URL(window.location.href);
      wanted ? url.searchParams.set("q", search.value.trim()) : url.searchParams.delete("q");
      chosen ? url.searchParams.set("tag", chosen) : url.searchParams.delete("tag");
      history.replaceState(null, "", url);
    };
    search.addEventListener("input", apply);
    tag.addEventListener("change", apply);
  }

  // --- the builder: check as you type ---------------------------------------------------
  const builder = document.querySelector('[data-role="builder"]');
  const result = document.querySelector('[data-role="result"]');
  const condition = document.querySelector('[data-role="condition"]');
  if (builder && result && condition) {
    let timer = null;
    let asked = 0;
    const check = async function () {
      const number = ++asked;
      const query = new URLSearchParams({ condition: condition.value });
      for (const box of builder.querySelectorAll('[data-role="column"]:checked')) {
        query.append("col", box.value);
      }
      const response = await fetch("/builder/check?" + query.toString(), {
        credentials: "same-origin",
      });
      const html = await response.text();
      if (number !== asked) return; // a later check is on its way
      result.innerHTML = html; // rendered and escaped by the server's template
      history.replaceState(null, "", "/builder?" + new URLSearchParams({ condition: condition.value }));
    };
    const soon = function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    };
    condition.addEventListener("input", soon);
    builder.addEventListener("change", soon);
    builder.addEventListener("submit", function (event) {
      event.preventDefault();
      check();
    });
    result.addEventListener("click", function (event) {
      const button = event.target.closest('[data-action="suggest"]');
      if (!button) return;
      const start = Number(button.dataset.start);
      const end = Number(button.dataset.end);
      const text = condition.value;
      condition.value = text.slice(0, start) + button.dataset.text + text.slice(end);
      condition.focus();
      check();
    });

    const save = document.querySelector('[data-role="save-form"]');
    const saved = document.querySelector('[data-role="save-message"]');
    if (save) {
      save.addEventListener("submit", async function (event) {
        event.preventDefault();
        const data = await post("/builder/save", { ...fields(save), condition: condition.value });
        say(saved, data, data.ok ? data.url : null);
      });
    }
  }

  // --- a segment: exclude a member -------------------------------------------------------
  const exclude = document.querySelector('[data-role="exclude-form"]');
  if (exclude) {
    const message = document.querySelector('[data-role="exclude-message"]');
    document.addEventListener("click", function (event) {
      const button = event.target.closest('[data-action="pick-exclude"]');
      if (!button) return;
      exclude.querySelector('[data-role="exclude-person"]').value = button.dataset.person;
      const reason = exclude.querySelector('[data-role="exclude-reason"]');
      exclude.scrollIntoView({ block: "center" });
      reason.focus();
    });
    exclude.addEventListener("submit", async function (event) {
      event.preventDefault();
      say(message, await post(exclude.dataset.url, fields(exclude)));
    });
  }

  document.body.dataset.ready = "true";
})();
