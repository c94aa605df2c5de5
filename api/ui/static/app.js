// jobq dashboard: fetch this page's server-rendered fragment with the bearer token (kept in
// sessionStorage, sent as a header, never in a URL), swap it in, and again every few seconds.
// State changes are POSTs to the JSON API with the same header. Fragments are escaped on the
// server; text this script shows goes through textContent.
"use strict";
(function () {
  const REFRESH_MS = 3000;
  const KEY = "jobq-token";
  const root = document.body.dataset.root || "";
  const main = document.getElementById("content");
  const login = document.getElementById("login");
  const notice = document.getElementById("notice");
  const status = document.getElementById("status");
  const forget = document.getElementById("forget");
  let busy = false;

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const token = sessionStorage.getItem(KEY);
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }

  function say(text, bad) {
    notice.hidden = !text;
    notice.className = bad ? "error" : "ok";
    notice.textContent = text || "";
  }

  function holdRefresh() {
    // Keep the page still while someone is choosing entries or typing in a filter.
    if (document.hidden || busy) return true;
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    const active = document.activeElement;
    return !!(active && main.contains(active) && /^(INPUT|SELECT)$/.test(active.tagName));
  }

  async function load(force) {
    if (!force && holdRefresh()) return;
    let answer;
    try {
      answer = await fetch(root + main.dataset.fragment + location.search,
        {headers: headers(), credentials: "omit", cache: "no-store"});
    } catch (err) {
      status.textContent = "offline";
      return;
    }
    if (answer.status === 401) {
      login.hidden = false;
      forget.hidden = true;
      main.replaceChildren();
      status.textContent = "sign in";
      return;
    }
    login.hidden = true;
    forget.hidden = !sessionStorage.getItem(KEY);
    main.innerHTML = await answer.text();  // rendered and escaped by the server
    status.textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function post(path, body) {
    const init = {method: "POST", headers: headers(), credentials: "omit"};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(root + path, init);
    const text = await answer.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (err) { data = null; }
    if (!answer.ok) {
      const message = data && data.error ? data.error.message : answer.status + " " + text;
      throw new Error(message);
    }
    return data;
  }

  async function act(run) {
    busy = true;
    try {
      say(await run(), false);
    } catch (err) {
      say(err.message, true);
    } finally {
      busy = false;
      load(true);
    }
  }

  function matchingFilter(button) {
    const filter = {};
    if (button.dataset.queue) filter.queue = button.dataset.queue;
    if (button.dataset.type) filter.type = button.dataset.type;
    if (button.dataset.reason) filter.reasonContains = button.dataset.reason;
    return filter;
  }

  document.addEventListener("click", function (event) {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.post) {
      act(async function () {
        await post(target.dataset.post);
        return target.dataset.done || "Done";
      });
    } else if (target.hasAttribute("data-replay-selected")) {
      const ids = Array.from(main.querySelectorAll("input[name=dlq]:checked"), (b) => b.value);
      if (!ids.length) { say("Select entries first", true); return; }
      act(async function () {
        const done = await post("/dlq/replay", {ids: ids});
        return "Replayed " + done.replayed.length + " of " + done.matched + " selected";
      });
    } else if (target.hasAttribute("data-replay-matching")) {
      const filter = matchingFilter(target);
      act(async function () {
        const dry = await post("/dlq/replay", Object.assign({dryRun: true}, filter));
        const confirm = document.createElement("button");
        confirm.type = "button";
        confirm.id = "confirm-replay";
        confirm.textContent = "Replay " + dry.matched + " matching entries";
        confirm.dataset.filter = JSON.stringify(filter);
        setTimeout(function () { notice.append(" ", confirm); }, 0);
        return dry.matched + " entries match" + (dry.truncated ? " (capped)" : "") + ".";
      });
    } else if (target.id === "confirm-replay") {
      const filter = JSON.parse(target.dataset.filter);
      act(async function () {
        const done = await post("/dlq/replay", filter);
        return "Replayed " + done.replayed.length + " entries";
      });
    } else if (target === forget) {
      sessionStorage.removeItem(KEY);
      load(true);
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    event.preventDefault();
    if (form === login) {
      sessionStorage.setItem(KEY, form.elements.token.value.trim());
      form.reset();
      load(true);
    } else if (form.hasAttribute("data-filter")) {
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
      history.replaceState(null, "", query.toString() ? "?" + query : location.pathname);
      document.activeElement.blur();
      load(true);
    }
  });

  load(true);
  setInterval(load, REFRESH_MS);
})();
