// The Cohort dashboard: plain JavaScript, no build step, no third-party code.
// Reads the node through its dashboard WebSocket (/dashboard/ws) and its
// /metrics; every value shown is set as text (names come from anyone who
// registers one), never parsed as HTML.
"use strict";

(function () {
  const KEY = "cohort-admin-token";
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);

  // ---- small helpers -----------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids) if (c !== null && c !== undefined) el.append(c);
    return el;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") el.textContent = v;
      else el.setAttribute(k, v);
    }
    for (const c of kids) el.append(c);
    return el;
  }
  function bytes(n) {
    if (n === undefined || n === null) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function ago(ms) {
    if (!ms) return "—";
    const d = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (d < 60) return d + " s ago";
    if (d < 3600) return Math.round(d / 60) + " min ago";
    if (d < 86400) return Math.round(d / 3600) + " h ago";
    return new Date(ms).toLocaleDateString();
  }
  function debounce(f, ms) {
    let t = null;
    return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
  }
  let toastTimer = null;
  function toast(text, bad) {
    const t = $("toast");
    t.textContent = text;
    t.className = bad ? "bad" : "";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ---- the token ---------------------------------------------------------
  // `cohort ctl dashboard` puts it in the fragment (never sent to the
  // server); it moves to sessionStorage and leaves the address bar.
  function takeTokenFromUrl() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }
  const token = () => sessionStorage.getItem(KEY);

  function showLogin(error) {
    $("app").hidden = true;
    $("logout").hidden = true;
    $("sync-btn").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = error || "";
    $("conn").textContent = "logged out";
    $("conn").className = "pill bad";
    $("login-token").focus();
  }

  // ---- the socket --------------------------------------------------------
  let ws = null;
  let authed = false;
  let retry = 1000;
  let nextId = 1;
  const pending = new Map();
  const st = {
    hello: null, state: null, events: [], tab: "cluster",
    scope: null, groupQ: "", groupSort: "name", groupDesc: false, groupOff: 0,
    member: null, memberQ: "", memberOff: 0,
    table: null, nameQ: "", nameOff: 0, prevSplit: [], links: new Set(), pictureKey: null, layout: null, pic: null,
  };

  function connect() {
    const t = token();
    if (!t) { showLogin(""); return; }
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const sock = new WebSocket(proto + location.host + "/dashboard/ws");
    ws = sock;
    $("conn").textContent = "connecting…";
    $("conn").className = "pill";
    sock.onopen = () => sock.send(JSON.stringify({ op: "auth", token: t }));
    sock.onmessage = (m) => {
      let v;
      try { v = JSON.parse(m.data); } catch (e) { return; }
      onMessage(v);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      for (const [, p] of pending) p.reject(new Error("connection closed"));
      pending.clear();
      if (!token()) return;
      if (!authed) return;
      $("conn").textContent = "disconnected, retrying…";
      $("conn").className = "pill bad";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  function call(msg) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected")); return; }
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify(Object.assign({ id }, msg)));
    });
  }

  function onMessage(v) {
    if (v.id !== undefined && pending.has(v.id)) {
      const p = pending.get(v.id);
      pending.delete(v.id);
      if (v.kind === "error") p.reject(new Error(v.error)); else p.resolve(v);
      return;
    }
    switch (v.kind) {
      case "auth_error":
        authed = false;
        sessionStorage.removeItem(KEY);
        showLogin("The node refused this token: " + v.error + ".");
        break;
      case "hello":
        authed = true;
        retry = 1000;
        st.hello = v;
        $("login").hidden = true;
        $("app").hidden = false;
        $("logout").hidden = false;
        $("ro").hidden = !v.read_only;
        $("sync-btn").hidden = v.read_only;
        $("node-name").textContent = v.node;
        for (const e of document.querySelectorAll(".this-node")) e.textContent = v.node;
        document.title = "Cohort · " + v.node;
        $("conn").textContent = "live";
        $("conn").className = "pill ok";
        fillTables(v.tables);
        pollMetrics();
        break;
      case "state":
        onState(v);
        break;
      case "history":
        st.events = v.events.slice(-500);
        renderTimeline();
        break;
      case "event":
        st.events.push(v);
        if (st.events.length > 500) st.events.shift();
        renderTimelineSoon();
        if (v.type === "registered" || v.type === "unregistered" || v.type === "conflict") refreshNamesSoon();
        break;
      case "lagged":
        toast("The dashboard fell behind the node's events (" + v.missed + " missed).", true);
        break;
      case "error":
        toast(v.error, true);
        break;
    }
  }

  // ---- cluster: state, table, picture --------------------------------------
  function onState(v) {
    const old = st.state;
    st.state = v;
    $("gg-state").textContent = "global groups: " + v.global_group_state;
    renderNodes();
    renderPicture();
    fillScopes(v.scopes);
    // The group table follows the counts of its scope.
    const sc = v.scopes.find((x) => x.name === st.scope);
    const osc = old && old.scopes.find((x) => x.name === st.scope);
    if (sc && (!osc || sc.members !== osc.members || sc.groups !== osc.groups)) {
      loadGroups();
      if (st.member) loadMembers();
    }
    const t = v.tables.find((x) => x.name === st.table);
    const ot = old && old.tables.find((x) => x.name === st.table);
    if (t && (!ot || t.names !== ot.names)) refreshNamesSoon();
  }

  function actionButton(label, op, node, text) {
    return h("button", {
      type: "button", class: "act", "data-op": op, "data-node": node, text: label,
      onclick: () => confirmThen(text, () => call({ op, node })
        .then(() => toast(label + " " + node + ": done"))
        .catch((e) => toast(label + " " + node + ": " + e.message, true))),
    });
  }

  // Rows are updated in place (keyed by node name), so a state push never
  // takes the keyboard focus away from an action button.
  function renderNodes() {
    const v = st.state;
    const ro = !st.hello || st.hello.read_only;
    document.querySelectorAll(".act-col").forEach((e) => { e.hidden = ro; });
    const body = $("nodes-table").tBodies[0];
    const old = new Map([...body.rows].map((r) => [r.dataset.node, r]));
    const rows = v.nodes.map((n) => {
      let tr = old.get(n.name);
      if (!tr) {
        tr = h("tr", { "data-node": n.name });
        for (let i = 0; i < 10; i++) tr.append(h("td"));
        tr.cells[1].append(h("span", { class: "state" }));
      }
      tr.dataset.state = n.state;
      const c = tr.cells;
      c[0].textContent = n.name + (n.self ? " (this node)" : "");
      c[1].firstChild.className = "state " + n.state;
      c[1].firstChild.textContent = n.state.replace("_", " ");
      c[2].textContent = n.creation ?? "—";
      c[3].textContent = n.address || "—";
      c[4].textContent = n.group || "—";
      c[5].textContent = n.hidden ? "yes" : "no";
      const has = n.bytes_in !== undefined;
      // Bytes, and the frames below them (the table stays narrow).
      if (has) c[6].replaceChildren(bytes(n.bytes_in) + " / " + bytes(n.bytes_out),
        h("small", { class: "sub", text: n.frames_in + " / " + n.frames_out + " frames" }));
      else c[6].textContent = "—";
      c[7].textContent = n.sync_lag !== undefined ? String(n.sync_lag) : "—";
      c[8].textContent = n.self ? "—" : ago(n.since);
      c[8].title = n.since ? new Date(n.since).toLocaleString() : "";
      c[9].hidden = ro;
      const ops = [];
      if (!n.self && !ro) {
        ops.push(n.state === "blocked" ? "unblock" : "block");
        if (n.state === "up") ops.push("disconnect");
      }
      const key = ops.join(",");
      if (c[9].dataset.ops !== key) {
        const hadFocus = c[9].contains(document.activeElement);
        c[9].dataset.ops = key;
        c[9].replaceChildren(...ops.map((op) => {
          if (op === "unblock") return actionButton("Unblock", op, n.name, "Lift the block of " + n.name + "? The node reconnects to it.");
          if (op === "block") return actionButton("Block", op, n.name, "Block all traffic with " + n.name + "? This is a fault drill: the session drops and stays down until unblocked.");
          return actionButton("Disconnect", op, n.name, "Disconnect from " + n.name + "? Neither side reconnects on its own.");
        }));
        if (hadFocus && c[9].firstChild) c[9].firstChild.focus();
      }
      return tr;
    });
    const same = rows.length === body.rows.length && rows.every((r, i) => body.rows[i] === r);
    if (!same) body.replaceChildren(...rows);
    // Fifty rows are a long table: a count per state, and a filter.
    const count = new Map();
    for (const n of v.nodes) if (!n.self) count.set(n.state, (count.get(n.state) || 0) + 1);
    const peers = [...count].map(([k, c]) => c + " " + k.replace("_", " ")).join(", ");
    $("nodes-summary").textContent = v.nodes.length + (peers ? " (this one; peers: " + peers + ")" : " (this one)");
    filterNodes();
  }

  function filterNodes() {
    const q = $("node-filter").value.trim().toLowerCase();
    const byName = new Map(st.state.nodes.map((n) => [n.name, n]));
    for (const tr of $("nodes-table").tBodies[0].rows) {
      const n = byName.get(tr.dataset.node);
      tr.hidden = !!q && !!n && ![n.name, n.state, n.group || ""].some((x) => x.toLowerCase().includes(q));
    }
  }

  // What the picture is drawn from; a state push that changes none of it
  // (traffic, lag) leaves the picture alone.
  function pictureKey(v) {
    return JSON.stringify([v.nodes.map((n) => [n.name, n.state, n.group, n.hidden, n.self]), v.views || {}]);
  }

  // A node's label: its name before the "@" when every node shares the
  // host part (a crowded ring has room for little more), else the name.
  function labeller(nodes) {
    const hosts = new Set(nodes.map((n) => n.name.slice(n.name.indexOf("@") + 1)));
    const shorts = new Set(nodes.map((n) => n.name.split("@")[0]));
    const short = hosts.size === 1 && shorts.size === nodes.length;
    return (name) => (short ? name.split("@")[0] : name);
  }

  // At most `n` items of a list, then how many more.
  function few(list, n) {
    return list.length <= n ? list.join(", ") : list.slice(0, n).join(", ") + " and " + (list.length - n) + " more";
  }

  // The cut pairs: each one while they are few, else how many and the
  // nodes most of them meet at (a node split from the rest is in all).
  function cutPairs(cut) {
    if (cut.length <= 4) return cut.join(", ");
    const deg = new Map();
    for (const p of cut) for (const x of p.split(" — ")) deg.set(x, (deg.get(x) || 0) + 1);
    const top = [...deg].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0])).slice(0, 5);
    return cut.length + " pairs of other nodes, most at " + top.map(([x, c]) => x + " (" + c + ")").join(", ");
  }

  function setAttr(el, k, v) {
    if (el.getAttribute(k) !== v) el.setAttribute(k, v);
  }

  // A line's look and state, and its layer: cut lines over the rest.
  function setLine(l, cls, state, title, layer) {
    setAttr(l, "class", cls);
    setAttr(l, "data-state", state);
    if (l.firstChild.textContent !== title) l.firstChild.textContent = title;
    if (l.parentNode !== layer) layer.append(l);
  }

  // The picture's frame: regions, points, labels and this node's lines,
  // in layers (sessions between others, this node's, cut ones, points).
  function buildPicture(nodes) {
    // Each global group is a region of its own, side by side (nodes of no
    // group share one more, unmarked); inside it, its nodes on a ring. A
    // crowded ring (past a dozen nodes) gets a taller picture, smaller
    // dots, labels along the radius and faint lines, so that the lines
    // that are cut (red, on top) stand out.
    const keys = [...new Set(nodes.map((n) => n.group || ""))].sort((x, y) => (x === "") - (y === "") || x.localeCompare(y));
    const most = Math.max(...keys.map((g) => nodes.filter((n) => (n.group || "") === g).length));
    const crowded = most > 12;
    const W = 640, H = crowded ? 600 : 300;
    const colors = ["#1d4e89", "#7b2cbf", "#e76f51", "#2a9d8f", "#b5838d", "#6a994e"];
    const colW = W / keys.length;
    const pos = new Map();
    const angle = new Map();
    const label = labeller(nodes);
    let dot = 9;
    const svg = s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: crowded ? "crowded" : "",
      "aria-label": "Cluster picture: " + nodes.length + " nodes and their sessions" });
    const cy = H / 2 + 8;
    keys.forEach((g, gi) => {
      const members = nodes.filter((n) => (n.group || "") === g).sort((x, y) => x.name.localeCompare(y.name));
      const cx = colW * (gi + 0.5);
      const room = crowded ? 40 : 44;
      const maxR = Math.max(0, Math.min(colW / 2 - room, H / 2 - room - 4));
      const r = members.length === 1 ? 0 : Math.min(maxR, 30 + 24 * members.length);
      if (members.length > 1) dot = Math.min(dot, Math.max(3, (Math.PI * r) / members.length / 1.6));
      members.forEach((n, i) => {
        const a = -Math.PI / 2 + (2 * Math.PI * i) / members.length;
        angle.set(n.name, members.length > 12 ? a : null);
        pos.set(n.name, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
      });
      if (g) {
        const c = colors[gi % colors.length];
        const rr = Math.min(r + (crowded ? 36 : 30), colW / 2 - 4, H / 2 - 14);
        svg.append(s("circle", { class: "region", "data-group": g, cx, cy, r: rr, fill: c, stroke: c }));
        // Above the region, or (when the ring's labels reach its top) at
        // its upper left.
        const [lx, ly, anchor] = crowded ? [cx - rr * 0.72, cy - rr * 0.72, "end"] : [cx, Math.max(12, cy - rr - 2), "middle"];
        svg.append(s("text", { class: "region-label", x: lx, y: ly, "text-anchor": anchor, fill: c, text: g }));
      }
    });
    const P = { svg, pos, crowded, edges: new Map(), links: new Map(), dots: new Map(), labels: new Map(),
      gLinks: s("g"), gEdges: s("g"), gCut: s("g"), gDots: s("g") };
    svg.append(P.gLinks, P.gEdges, P.gCut, P.gDots);
    const me = nodes.find((n) => n.self);
    const [sx, sy] = pos.get(me.name);
    for (const n of nodes) {
      const [x, y] = pos.get(n.name);
      if (!n.self) {
        const l = s("line", { "data-peer": n.name, x1: sx, y1: sy, x2: x, y2: y }, s("title"));
        P.edges.set(n.name, l);
      }
      const d = s("circle", { "data-node": n.name, cx: x, cy: y, r: n.self ? dot + 2 : dot }, s("title"));
      P.dots.set(n.name, d);
      P.gDots.append(d);
      const a = angle.get(n.name);
      let t;
      if (a === null || a === undefined) {
        t = s("text", { class: "node-label", x, y: y >= cy ? y + 24 : y - 16, "text-anchor": "middle", text: n.name });
      } else {
        // Along the radius, outwards, never upside down.
        const left = Math.cos(a) < -1e-9;
        const deg = (a * 180) / Math.PI + (left ? 180 : 0);
        const gap = dot + 4;
        const lx = x + gap * Math.cos(a), ly = y + gap * Math.sin(a);
        t = s("text", { class: "node-label", "data-node": n.name,
          x: lx, y: ly, "text-anchor": left ? "end" : "start", "dominant-baseline": "central",
          transform: "rotate(" + deg.toFixed(1) + " " + lx.toFixed(1) + " " + ly.toFixed(1) + ")", text: label(n.name) });
      }
      P.labels.set(n.name, t);
      P.gDots.append(t);
    }
    st.pic = P;
    $("cluster").replaceChildren(svg);
  }

  function renderPicture() {
    const v = st.state;
    const key = pictureKey(v);
    if (key === st.pictureKey) return;
    st.pictureKey = key;
    const nodes = v.nodes;
    // The points move only when nodes come, go or change group; otherwise
    // the lines and points change their state in place (a split at 50
    // nodes changes a few of 1,225 lines, not all of them).
    const layout = JSON.stringify(nodes.map((n) => [n.name, n.group || "", !!n.self]));
    if (layout !== st.layout) { st.layout = layout; buildPicture(nodes); }
    const P = st.pic;
    const me = nodes.find((n) => n.self);
    for (const n of nodes) {
      if (n.self) continue;
      const cls = n.state === "up" ? (n.hidden ? "hidden-s" : "up") : n.state;
      setLine(P.edges.get(n.name), "edge " + cls, n.state, me.name + " — " + n.name + ": " + n.state, n.state === "up" ? P.gEdges : P.gCut);
    }
    // The sessions between two other nodes, as each of them publishes its
    // own: a pair once seen up and now not turns red and dashed.
    const views = v.views || {};
    const others = nodes.filter((n) => !n.self).map((n) => n.name);
    const cut = [];
    const drawn = new Set();
    others.forEach((x, i) => others.slice(i + 1).forEach((y) => {
      const vx = views[x], vy = views[y];
      if (!vx && !vy) return;
      const pair = x + "|" + y;
      const up = (!vx || vx.includes(y)) && (!vy || vy.includes(x));
      if (up) st.links.add(pair);
      else if (!st.links.has(pair)) return;
      else cut.push(x + " — " + y);
      let l = P.links.get(pair);
      if (!l) {
        const [x1, y1] = P.pos.get(x), [x2, y2] = P.pos.get(y);
        l = s("line", { "data-a": x, "data-b": y, x1, y1, x2, y2 }, s("title"));
        P.links.set(pair, l);
      }
      drawn.add(pair);
      setLine(l, "link " + (up ? "up" : "down"), up ? "up" : "down", x + " — " + y + ": " + (up ? "up" : "no session"), up ? P.gLinks : P.gCut);
    }));
    for (const [pair, l] of P.links) if (!drawn.has(pair)) { l.remove(); P.links.delete(pair); }
    for (const n of nodes) {
      const d = P.dots.get(n.name);
      setAttr(d, "class", "node-dot " + (n.self ? "self" : n.state));
      if (d.firstChild.textContent !== n.name + ": " + n.state) d.firstChild.textContent = n.name + ": " + n.state;
      const t = P.labels.get(n.name);
      if (t && P.crowded) setAttr(t, "class", "node-label" + (n.self ? " self" : "") + (n.state !== "up" && !n.self ? " bad" : ""));
    }
    const split = nodes.filter((n) => !n.self && n.state !== "up").map((n) => n.name + " (" + n.state.replace("_", " ") + ")");
    const b = $("split-banner");
    if (split.length || cut.length) {
      b.textContent = "Split: " + [
        split.length ? "no session with " + few(split, 8) : "",
        cut.length ? "no session between " + cutPairs(cut) : ""].filter((x) => x).join("; ");
      b.className = "banner";
      b.hidden = false;
    } else if (st.prevSplit.length) {
      b.textContent = "Healed: every known node is connected again";
      b.className = "banner healed";
      b.hidden = false;
    }
    st.prevSplit = split.concat(cut);
  }

  // ---- process groups ------------------------------------------------------
  function fillScopes(scopes) {
    const sel = $("scope-select");
    const names = scopes.map((x) => x.name);
    const have = [...sel.options].map((o) => o.value);
    if (names.join("\n") !== have.join("\n")) {
      sel.replaceChildren(...scopes.map((x) => h("option", { value: x.name, text: x.name })));
      if (!names.includes(st.scope)) st.scope = names.includes("pg") ? "pg" : names[0];
      sel.value = st.scope;
    }
    for (const o of sel.options) {
      const x = scopes.find((y) => y.name === o.value);
      if (x) o.textContent = x.name + " (" + x.groups + " groups, " + x.members + " members)";
    }
  }

  function pager(el, total, off, size, go) {
    const last = Math.max(0, Math.ceil(total / size) - 1);
    const page = Math.floor(off / size);
    // Two thousand pages of names: the ends are one key away too.
    el.replaceChildren(
      h("button", { type: "button", class: "first", text: "« First", disabled: page === 0, onclick: () => go(0) }),
      h("button", { type: "button", class: "prev", text: "‹ Previous", disabled: page === 0, onclick: () => go((page - 1) * size) }),
      h("span", { text: total ? (off + 1) + "–" + Math.min(off + size, total) + " of " + total : "none" }),
      h("button", { type: "button", class: "next", text: "Next ›", disabled: page >= last, onclick: () => go((page + 1) * size) }),
      h("button", { type: "button", class: "last", text: "Last »", disabled: page >= last, onclick: () => go(last * size) }));
  }

  let groupsSeq = 0;
  function loadGroups() {
    if (!st.scope) return;
    const seq = ++groupsSeq;
    call({ op: "groups", scope: st.scope, q: st.groupQ, sort: st.groupSort, desc: st.groupDesc, offset: st.groupOff, limit: PAGE })
      .then((r) => {
        if (seq !== groupsSeq) return;
        if (r.total > 0 && st.groupOff >= r.total) { st.groupOff = Math.floor((r.total - 1) / PAGE) * PAGE; loadGroups(); return; }
        const body = $("groups-table").tBodies[0];
        body.replaceChildren(...r.rows.map((g) => h("tr", { "data-group": g.group, class: st.member && st.member === g.group ? "selected" : "" },
          h("td", {}, h("button", { type: "button", class: "link", text: g.group, onclick: () => openMembers(g.group) })),
          h("td", { class: "count", text: String(g.members) }),
          h("td", { text: Object.entries(g.per_node).map(([n, c]) => n + ": " + c).join(", ") }))));
        if (!r.rows.length) body.append(h("tr", {}, h("td", { colspan: 3, text: st.groupQ ? "no group matches" : "no group in this scope" })));
        pager($("groups-pager"), r.total, r.offset, PAGE, (o) => { st.groupOff = o; loadGroups(); });
        document.querySelectorAll("#groups-table .sort").forEach((b) => {
          b.setAttribute("aria-sort", b.dataset.sort === st.groupSort ? (st.groupDesc ? "descending" : "ascending") : "none");
        });
      })
      .catch((e) => toast("groups: " + e.message, true));
  }

  function openMembers(group) {
    st.member = group;
    st.memberOff = 0;
    st.memberQ = "";
    $("member-search").value = "";
    $("members-title").textContent = st.scope + " / " + group;
    $("members-card").hidden = false;
    for (const tr of $("groups-table").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.group === group);
    loadMembers();
  }

  let membersSeq = 0;
  function loadMembers() {
    const seq = ++membersSeq;
    call({ op: "members", scope: st.scope, group: st.member, q: st.memberQ, offset: st.memberOff, limit: 100 })
      .then((r) => {
        if (seq !== membersSeq) return;
        $("members-table").tBodies[0].replaceChildren(...r.rows.map((m) => h("tr", {},
          h("td", { text: String(m.order) }), h("td", { text: m.pid }), h("td", { text: m.node }), h("td", { text: m.local ? "yes" : "no" }))));
        pager($("members-pager"), r.total, r.offset, 100, (o) => { st.memberOff = o; loadMembers(); });
      })
      .catch((e) => toast("members: " + e.message, true));
  }

  // ---- global names --------------------------------------------------------
  function fillTables(tables) {
    const sel = $("table-select");
    sel.replaceChildren(...tables.map((t) => h("option", { value: t.name, text: t.name + " (" + t.mode + ")" })));
    if (!tables.some((t) => t.name === st.table)) st.table = tables.length ? tables[0].name : null;
    sel.value = st.table;
  }

  let namesSeq = 0;
  function loadNames() {
    if (!st.table) return;
    const seq = ++namesSeq;
    const ro = st.hello.read_only;
    call({ op: "names", table: st.table, q: st.nameQ, offset: st.nameOff, limit: PAGE })
      .then((r) => {
        if (seq !== namesSeq) return;
        const body = $("names-table").tBodies[0];
        body.replaceChildren(...r.rows.map((n) => h("tr", { "data-name": n.name },
          h("td", { text: n.name }), h("td", { text: n.pid }), h("td", { text: n.node }),
          h("td", { text: n.meta || "—" }), h("td", { text: n.mode || "—" }),
          h("td", { hidden: ro }, h("button", {
            type: "button", class: "act", "data-op": "unregister", text: "Unregister",
            onclick: () => confirmThen("Unregister " + n.name + " (held by " + n.pid + ")? Its holder is told.",
              () => call({ op: "unregister", table: st.table, name: n.name })
                .then(() => toast("unregistered " + n.name))
                .catch((e) => toast("unregister " + n.name + ": " + e.message, true))),
          })))));
        if (!r.rows.length) body.append(h("tr", {}, h("td", { colspan: 6, text: st.nameQ ? "no name matches" : "no name registered" })));
        pager($("names-pager"), r.total, r.offset, PAGE, (o) => { st.nameOff = o; loadNames(); });
      })
      .catch((e) => toast("names: " + e.message, true));
  }
  const refreshNamesSoon = debounce(() => { if (st.tab === "names") loadNames(); }, 300);

  // ---- the timeline --------------------------------------------------------
  function describe(e) {
    switch (e.type) {
      case "nodeup": return ["good", "node up", e.node + " (creation " + e.creation + ")"];
      case "nodedown": return ["bad", "node down", e.node + ": " + e.reason];
      case "registered": return ["", "registered", e.name + " → " + e.pid + " (" + e.table + ")"];
      case "unregistered": return ["", "unregistered", e.name + " from " + e.pid + " (" + e.reason + ")"];
      case "conflict": return ["bad", "name conflict", e.name + ": winner " + (e.winner || "none") + ", loser " + e.loser + ", action " + e.action];
      case "names_rate": return ["", "name churn", e.table + ": " + e.registered + " more registrations, " + e.unregistered + " more unregistrations in " + e.per];
      case "pg_rate": return ["", "group churn", e.scope + ": " + e.joins + " joins, " + e.leaves + " leaves in " + e.per];
      case "sync_error": return ["bad", "sync error", e.node];
      case "block": case "unblock": case "disconnect": return ["", e.type, e.node + " (from a dashboard)"];
      default: return ["", e.type, JSON.stringify(e)];
    }
  }
  // A hundred events in a second (a node's names going with it) are one
  // redraw a frame, not a hundred.
  let timelineQueued = false;
  function renderTimelineSoon() {
    if (timelineQueued) return;
    timelineQueued = true;
    requestAnimationFrame(() => { timelineQueued = false; renderTimeline(); });
  }
  function renderTimeline() {
    const list = $("timeline");
    const items = st.events.slice(-200).reverse().map((e) => {
      const [cls, what, rest] = describe(e);
      return h("li", { class: cls, "data-type": e.type },
        h("time", { datetime: new Date(e.at).toISOString(), text: new Date(e.at).toLocaleTimeString() }),
        h("span", { class: "what", text: what }), " ", h("span", { class: "detail", text: rest }));
    });
    if (!items.length) items.push(h("li", { text: "no event since the node started serving dashboards" }));
    list.replaceChildren(...items);
  }

  // ---- metrics -------------------------------------------------------------
  // Figures from /metrics every 5 s (no event tells when they change), kept
  // 10 minutes. Counters are shown as rates.
  const CHARTS = [
    ["Connected nodes", (m) => m.get('cohort_nodes{kind="visible"}'), false, ""],
    ["Names", (m) => m.get("cohort_names"), false, ""],
    ["Group memberships", (m) => sum(m, "cohort_pg_members{"), false, ""],
    ["Bytes in /s", (m) => m.get('cohort_bytes_total{dir="in"}'), true, "B"],
    ["Bytes out /s", (m) => m.get('cohort_bytes_total{dir="out"}'), true, "B"],
    ["Frames in /s", (m) => m.get('cohort_frames_total{dir="in"}'), true, ""],
    ["Sync lag", (m) => m.get("cohort_sync_lag"), false, ""],
    ["Attached processes", (m) => m.get("cohort_attached_processes"), false, ""],
    ["Admin requests /s", (m) => m.get("cohort_admin_requests_total"), true, ""],
  ];
  const series = CHARTS.map(() => []);
  let lastRaw = null;
  function sum(m, prefix) {
    let t = 0, any = false;
    for (const [k, v] of m) if (k.startsWith(prefix)) { t += v; any = true; }
    return any ? t : undefined;
  }
  function parseProm(text) {
    const m = new Map();
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const i = line.lastIndexOf(" ");
      m.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return m;
  }
  function pollMetrics() {
    const t = token();
    if (!t || !authed) return;
    fetch("/metrics", { headers: { Authorization: "Bearer " + t }, cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status))))
      .then((text) => {
        const now = Date.now();
        const m = parseProm(text);
        CHARTS.forEach(([, get, rate], i) => {
          const v = get(m);
          if (v === undefined) return;
          let y = v;
          if (rate) {
            const prev = lastRaw && lastRaw.vals[i];
            if (prev === undefined || prev === null) { return; }
            y = Math.max(0, (v - prev) / ((now - lastRaw.at) / 1000));
          }
          series[i].push([now, y]);
          while (series[i].length && series[i][0][0] < now - 600000) series[i].shift();
        });
        lastRaw = { at: now, vals: CHARTS.map(([, get]) => get(m)) };
        if (st.tab === "metrics") renderCharts();
      })
      .catch(() => { /* the socket's state says whether the node is there */ });
  }
  function renderCharts() {
    $("charts").replaceChildren(...CHARTS.map(([title, , , unit], i) => {
      const pts = series[i];
      const W = 240, H = 50;
      const max = Math.max(1, ...pts.map((p) => p[1]));
      const now = Date.now();
      let poly = pts.map((p) => ((W * (p[0] - (now - 600000))) / 600000).toFixed(1) + "," + (H - 2 - ((H - 4) * p[1]) / max).toFixed(1)).join(" ");
      const last = pts.length ? pts[pts.length - 1][1] : null;
      // One sample is a dot's worth of line.
      if (pts.length === 1) poly += " " + W + "," + poly.split(",")[1];
      const shown = last === null ? "—" : unit === "B" ? bytes(Math.round(last)) : (Math.round(last * 10) / 10).toString();
      return h("div", { class: "chart", "data-metric": title },
        h("h3", { text: title }), h("div", { class: "val", text: shown }),
        s("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": title + " over the last 10 minutes" },
          s("polyline", { points: poly })),
        h("small", { text: "max " + (unit === "B" ? bytes(Math.round(max)) : Math.round(max * 10) / 10) }));
    }));
  }

  // ---- confirmation ---------------------------------------------------------
  let onConfirm = null;
  let opener = null;
  function confirmThen(text, f) {
    $("confirm-text").textContent = text;
    onConfirm = f;
    opener = document.activeElement;
    $("confirm").showModal();
    $("confirm-cancel").focus();
  }

  // ---- tabs -----------------------------------------------------------------
  const TABS = ["cluster", "groups", "names", "metrics"];
  function showTab(name) {
    st.tab = name;
    for (const t of TABS) {
      $("tab-" + t).setAttribute("aria-selected", String(t === name));
      $("tab-" + t).tabIndex = t === name ? 0 : -1;
      $("view-" + t).hidden = t !== name;
    }
    if (name === "groups") loadGroups();
    if (name === "names") loadNames();
    if (name === "metrics") renderCharts();
  }

  // ---- wiring ----------------------------------------------------------------
  function init() {
    takeTokenFromUrl();
    // A token link opened in a tab that already shows the page.
    window.addEventListener("hashchange", () => {
      if (!/token=/.test(location.hash)) return;
      takeTokenFromUrl();
      if (ws) { const old = ws; ws = null; old.close(); }
      connect();
    });
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const t = $("login-token").value.trim();
      if (!t) return;
      sessionStorage.setItem(KEY, t);
      $("login-token").value = "";
      $("login-error").textContent = "checking…";
      connect();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      authed = false;
      if (ws) ws.close();
      showLogin("");
    });
    $("sync-btn").addEventListener("click", () => confirmThen(
      "Re-check global groups and names with every peer (sync)?",
      () => call({ op: "sync" }).then(() => toast("sync: done")).catch((e) => toast("sync: " + e.message, true))));
    $("confirm-ok").addEventListener("click", () => {
      $("confirm").close();
      const f = onConfirm;
      onConfirm = null;
      if (f) f();
    });
    $("confirm-cancel").addEventListener("click", () => $("confirm").close());
    // Escape closes the dialog too: whatever closed it, nothing is done
    // unless Confirm was chosen (its handler takes the action first).
    $("confirm").addEventListener("close", () => {
      onConfirm = null;
      // The focus goes back where it was (browsers differ in whether they
      // do this themselves).
      const o = opener;
      opener = null;
      if (o && o.isConnected && (document.activeElement === document.body || !document.activeElement)) o.focus();
    });
    TABS.forEach((t, i) => {
      const b = $("tab-" + t);
      b.addEventListener("click", () => showTab(t));
      b.addEventListener("keydown", (e) => {
        const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (!d) return;
        const next = TABS[(i + d + TABS.length) % TABS.length];
        showTab(next);
        $("tab-" + next).focus();
      });
    });
    $("scope-select").addEventListener("change", (e) => {
      st.scope = e.target.value; st.groupOff = 0; st.member = null;
      $("members-card").hidden = true;
      loadGroups();
    });
    $("group-search").addEventListener("input", debounce((e) => { st.groupQ = e.target.value; st.groupOff = 0; loadGroups(); }, 250));
    $("member-search").addEventListener("input", debounce((e) => { st.memberQ = e.target.value; st.memberOff = 0; loadMembers(); }, 250));
    document.querySelectorAll("#groups-table .sort").forEach((b) => b.addEventListener("click", () => {
      if (st.groupSort === b.dataset.sort) st.groupDesc = !st.groupDesc;
      else { st.groupSort = b.dataset.sort; st.groupDesc = b.dataset.sort === "members"; }
      st.groupOff = 0;
      loadGroups();
    }));
    $("node-filter").addEventListener("input", () => { if (st.state) filterNodes(); });
    $("table-select").addEventListener("change", (e) => { st.table = e.target.value; st.nameOff = 0; loadNames(); });
    $("name-search").addEventListener("input", debounce((e) => { st.nameQ = e.target.value; st.nameOff = 0; loadNames(); }, 250));
    showTab("cluster");
    setInterval(pollMetrics, 5000);
    // "since" columns age without events.
    setInterval(() => { if (st.state && st.tab === "cluster") renderNodes(); }, 10000);
    connect();
    pollMetrics();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
