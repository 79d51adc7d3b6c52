"use strict";
// The students' page: everything it shows comes from /api/*; text goes in through esc() or
// textContent only, never as markup of its own.
(function () {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  let info = null, matrixAt = null, conn = null;
  window.minetRendered = {};

  async function api(path, body) {
    const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = {error: "HTTP " + r.status}; }
    return {status: r.status, data: data};
  }

  async function start() {
    const r = await api("/api/info");
    info = r.data;
    $("name").textContent = info.name || "";
    const locked = info.access === "groups" && !info.me;
    $("sec-login").hidden = !locked;
    $("content").hidden = locked;
    $("nav").hidden = locked;
    $("me").innerHTML = info.me ? "group AS" + esc(info.me.asn) + " (" + esc(info.me.user) + ") <button id=\"logout\">log out</button>"
                                : (info.access === "public" ? "public page" : "");
    if (info.me) $("logout").onclick = async () => { await api("/api/logout", {}); location.reload(); };
    if (locked) return;
    fillForms();
    await Promise.all([loadMatrix(), loadConnections()]);
    document.body.dataset.ready = "1";
    setInterval(loadMatrix, 10000);
  }

  function fillForms() {
    const byAs = {};
    for (const r of info.routers) (byAs[r.split(".")[0]] = byAs[r.split(".")[0]] || []).push(r);
    let html = "";
    for (const asn of info.ases) {
      if (!byAs[asn]) continue;
      html += "<optgroup label=\"AS" + esc(asn) + "\">" + byAs[asn].map((r) => "<option>" + esc(r) + "</option>").join("") + "</optgroup>";
    }
    $("lg-router").innerHTML = html;
    if (info.me && byAs[info.me.asn]) $("lg-router").value = byAs[info.me.asn][0];
    $("lg-suggest").innerHTML = ["show bgp summary", "show ip bgp", "show ip route", "show ipv6 route",
      "show ip ospf neighbor", "show interface brief", "show bfd peers", "show version"].map((c) => "<option value=\"" + esc(c) + "\">").join("");
    $("lg-forms").textContent = "Allowed: " + info.lg_forms.join(", ");
    $("ms-from").innerHTML = info.ases.map((a) => "<option>" + esc(a) + "</option>").join("");
    if (info.me) $("ms-from").value = String(info.me.asn);
    $("lg-form").onsubmit = (ev) => { ev.preventDefault(); run("lg", "/api/lg", {router: $("lg-router").value, command: $("lg-command").value}); };
    $("ms-form").onsubmit = (ev) => { ev.preventDefault(); run("ms", "/api/measure", {tool: $("ms-tool").value, from: Number($("ms-from").value), dest: $("ms-dest").value}); };
    $("conn-filter").oninput = drawConnections;
  }

  async function run(prefix, path, body) {
    const go = $(prefix + "-go");
    go.disabled = true;
    $(prefix + "-err").textContent = "";
    $(prefix + "-out").textContent = "";
    $(prefix + "-out").dataset.done = "";
    try {
      const r = await api(path, body);
      if (r.status !== 200) { $(prefix + "-err").textContent = r.data.error || ("HTTP " + r.status); return; }
      $(prefix + "-out").textContent = r.data.output || "(no output)";
      $(prefix + "-out").dataset.done = "1";
    } catch (e) {
      $(prefix + "-err").textContent = String(e);
    } finally { go.disabled = false; }
  }

  async function loadMatrix() {
    const r = await api("/api/matrix");
    if (r.status === 401) { location.reload(); return; }
    const m = r.data.matrix;
    if (!m) { $("matrix-summary").textContent = "no matrix yet (the teaching assistants run it)"; return; }
    if (m.at === matrixAt) return;
    matrixAt = m.at;
    const t0 = performance.now();
    const mine = info.me ? info.me.asn : null;
    let h = "<thead><tr><th></th>" + m.asns.map((d) => "<th" + (d === mine ? " class=\"mine\"" : "") + ">" + d + "</th>").join("") + "</tr></thead><tbody>";
    m.grid.forEach((row, i) => {
      const s = m.asns[i];
      h += "<tr" + (s === mine ? " class=\"mine\"" : "") + "><th>" + s + "</th>";
      row.forEach((v, j) => {
        const d = m.asns[j];
        const cls = s === d ? "self" : v === false ? "bad" : v === null ? "none" : "ok";
        const tip = s === d ? "" : "AS" + s + " \u2192 AS" + d + ": " + (v === false ? "no reply" : v === null ? "not measured" : v + " ms");
        h += "<td id=\"m-" + s + "-" + d + "\" class=\"" + cls + "\" title=\"" + tip + "\"></td>";
      });
      h += "</tr>";
    });
    $("matrix").innerHTML = h + "</tbody>";
    const when = m.at ? new Date(m.at * 1000).toLocaleString() : "?";
    $("matrix-summary").textContent = (m.ok === m.total ? "all " + m.total : m.ok + " of " + m.total) +
      " pairs reach (IPv" + m.family + "), measured " + when;
    window.minetRendered.matrix = performance.now() - t0;
  }

  async function loadConnections() {
    const r = await api("/api/connections");
    if (r.status !== 200) return;
    conn = r.data.ases;
    drawConnections();
  }

  function drawConnections() {
    if (!conn) return;
    const t0 = performance.now();
    const want = $("conn-filter").value.trim().replace(/^AS/i, "");
    const mine = info.me ? info.me.asn : null;
    let h = "";
    for (const a of conn) {
      if (want && String(a.asn) !== want) continue;
      const me = a.asn === mine ? " mine" : "";
      h += "<tr class=\"as-head" + me + "\" id=\"conn-as-" + a.asn + "\"><td colspan=\"8\">AS" + a.asn + " (" + a.routers.length +
        " routers, server " + esc(a.server) + (a.configure ? "" : ", students' AS") + ")</td></tr>";
      for (const c of a.connections) {
        h += "<tr class=\"conn" + me + "\"><td>" + a.asn + "</td><td>" + esc(c.router) + "</td><td>" + esc(c.ip) +
          (c.ip6 ? "<br>" + esc(c.ip6) : "") + "</td><td>" + esc(c.neighbor_as) + "</td><td>" + esc(c.neighbor_router) +
          "</td><td>" + esc(c.neighbor_ip) + (c.neighbor_ip6 ? "<br>" + esc(c.neighbor_ip6) : "") + "</td><td>" + esc(c.neighbor_is) +
          "</td><td>" + (c.ixp ? "IXP " + esc(c.ixp) + " (members: " + esc(c.ixp_members.join(", ")) + ")" : "link " + esc(c.link)) + "</td></tr>";
      }
    }
    document.querySelector("#conn tbody").innerHTML = h;
    window.minetRendered.connections = performance.now() - t0;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").onsubmit = async (ev) => {
      ev.preventDefault();
      $("login-err").textContent = "";
      const r = await api("/api/login", {user: $("login-user").value, password: $("login-password").value});
      if (r.status !== 200) { $("login-err").textContent = r.data.error || ("HTTP " + r.status); return; }
      location.reload();
    };
    start();
  });
})();
