// AuraCore meter page: one WebSocket to the daemon; meters drawn as they arrive, controls built
// from the registry the server sends, the EQ curve computed here from the parameters (RBJ
// cookbook, the same design the engine runs). Nothing is fetched from anywhere else.
"use strict";

const LUFS_MIN = -48, LUFS_MAX = 0;
const TP_MIN = -30, TP_MAX = 3;
const GR_MAX_DB = 24;
const SPEC_MIN_DB = -96, SPEC_MAX_DB = 0;
const EQ_RANGE_DB = 18;
const HISTORY_S = 60;
const SEND_EVERY_MS = 20;          // coalesce a dragged slider into ~50 sets a second at most
const F_MIN = 20, F_MAX = 20000;
const SLIDER_STEPS = 1000;
const GROUPS = [
  ["Gain & width", ["input.gain_db", "output.gain_db", "width.amount", "bypass"]],
  ["Compressor", ["comp.threshold_db", "comp.ratio", "comp.attack_ms", "comp.release_ms", "comp.knee_db",
                  "comp.makeup_db", "comp.rms"]],
  ["Limiter & loudness", ["limiter.ceiling_dbtp", "limiter.release_ms", "loudness.target_lufs", "loudness.auto"]],
  ["Models", ["ai.enabled", "ai.amount"]],
];
const LABELS = {
  "input.gain_db": "input", "output.gain_db": "output", "width.amount": "width", "bypass": "bypass",
  "comp.threshold_db": "threshold", "comp.ratio": "ratio", "comp.attack_ms": "attack", "comp.release_ms": "release",
  "comp.knee_db": "knee", "comp.makeup_db": "makeup", "comp.rms": "RMS detector",
  "limiter.ceiling_dbtp": "ceiling", "limiter.release_ms": "release", "loudness.target_lufs": "target",
  "loudness.auto": "auto loudness", "ai.enabled": "enabled", "ai.amount": "amount",
};

// Everything the page knows; exposed for the console and the browser test.
const state = {
  registry: {}, params: {}, status: null, meters: null, frames: 0, missed: 0, lastSeq: 0,
  history: [], spectrum: null, controls: {}, pending: {}, sendTimer: null, ws: null, connected: false,
};
window.auracore = state;

const $ = (id) => document.getElementById(id);

// ---- formatting ---------------------------------------------------------------------------
function fmt(v, digits = 1) {
  return v === null || v === undefined || !isFinite(v) ? "-" : v.toFixed(digits);
}
function fmtParam(p, v) {
  if (p.kind === "bool") return v >= 0.5 ? "on" : "off";
  switch (p.unit) {
    case "Hz": return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " kHz" : v.toFixed(0) + " Hz";
    case "ms": return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + " ms";
    case ":1": return v.toFixed(1) + ":1";
    case "dB": case "dBFS": case "dBTP": case "LUFS": return (v > 0 ? "+" : "") + v.toFixed(1) + " " + p.unit;
    case "x": return v.toFixed(2) + "x";
    default: return v.toFixed(2);
  }
}

// ---- slider mapping: log for quantities that span decades ---------------------------------
function isLog(p) { return p.min > 0 && p.max / p.min >= 50; }
function toSlider(p, v) {
  const t = isLog(p) ? Math.log(v / p.min) / Math.log(p.max / p.min) : (v - p.min) / (p.max - p.min);
  return Math.round(Math.min(1, Math.max(0, t)) * SLIDER_STEPS);
}
function fromSlider(p, pos) {
  const t = pos / SLIDER_STEPS;
  let v = isLog(p) ? p.min * Math.pow(p.max / p.min, t) : p.min + t * (p.max - p.min);
  const step = isLog(p) ? (v < 10 ? 0.1 : 1) : (p.max - p.min <= 2 ? 0.01 : 0.1);
  return Math.min(p.max, Math.max(p.min, Math.round(v / step) * step));
}

// ---- controls -----------------------------------------------------------------------------
function makeControl(id, label, compact) {
  const p = state.registry[id];
  const wrap = document.createElement("div");
  wrap.className = compact ? "cell" : "ctl";
  let input;
  if (p.kind === "bool") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.addEventListener("change", () => queueSet(id, input.checked ? 1 : 0));
  } else {
    input = document.createElement("input");
    input.type = "range";
    input.min = 0; input.max = SLIDER_STEPS; input.step = 1;
    input.addEventListener("input", () => {
      const v = fromSlider(p, +input.value);
      out.textContent = fmtParam(p, v);
      state.params[id] = v;
      drawSpectrum();
      queueSet(id, v);
    });
    input.addEventListener("pointerdown", () => { input.dataset.dragging = "1"; });
    input.addEventListener("pointerup", () => { delete input.dataset.dragging; });
    input.addEventListener("dblclick", () => { setNow(id, p.default); });
  }
  input.dataset.id = id;
  input.title = `${id}: ${p.description} (${p.min} to ${p.max} ${p.unit}, default ${p.default}; double-click resets)`;
  const out = document.createElement("output");
  if (!compact) {
    const lbl = document.createElement("label");
    lbl.textContent = label;
    lbl.title = input.title;
    wrap.append(lbl);
  }
  wrap.append(input, out);
  state.controls[id] = { input, out, p };
  return wrap;
}

function buildControls() {
  const groups = $("groups");
  groups.textContent = "";
  state.controls = {};
  for (const [title, ids] of GROUPS) {
    const g = document.createElement("div");
    g.className = "group";
    const h = document.createElement("h3");
    h.textContent = title;
    g.append(h);
    for (const id of ids) if (state.registry[id]) g.append(makeControl(id, LABELS[id] || id, false));
    groups.append(g);
  }
  const grid = $("eq-grid");
  grid.textContent = "";
  const bands = Object.keys(state.registry).filter((id) => /^eq\.\d+\.gain_db$/.test(id)).length;
  grid.append(cell("", "head"));
  for (let b = 1; b <= bands; b++) grid.append(cell(String(b), "head"));
  for (const [key, name] of [["gain_db", "gain"], ["freq_hz", "freq"], ["q", "Q"]]) {
    grid.append(cell(name, "rowlbl"));
    for (let b = 1; b <= bands; b++) grid.append(makeControl(`eq.${b}.${key}`, "", true));
  }
  for (const id in state.controls) showParam(id);
}

function cell(text, cls) {
  const d = document.createElement("div");
  d.className = cls;
  d.textContent = text;
  return d;
}

function showParam(id) {
  const c = state.controls[id];
  const v = state.params[id];
  if (c && v !== undefined) {
    if (c.p.kind === "bool") c.input.checked = v >= 0.5;
    else if (!c.input.dataset.dragging) c.input.value = toSlider(c.p, v);
    c.out.textContent = fmtParam(c.p, v);
  }
}

function queueSet(id, value) {
  state.pending[id] = value;
  if (!state.sendTimer) state.sendTimer = setTimeout(flushSets, SEND_EVERY_MS);
}
function flushSets() {
  state.sendTimer = null;
  if (Object.keys(state.pending).length && state.connected) {
    state.ws.send(JSON.stringify({ type: "set", params: state.pending }));
  }
  state.pending = {};
}
function setNow(id, value) {
  state.params[id] = value;
  showParam(id);
  queueSet(id, value);
}
function send(msg) {
  if (state.connected) state.ws.send(JSON.stringify(msg));
}

// ---- messages -----------------------------------------------------------------------------
function onStatus(msg) {
  state.status = msg;
  state.registry = {};
  for (const p of msg.registry) state.registry[p.id] = p;
  const sel = $("preset");
  sel.length = 1;
  for (const name of msg.presets) sel.add(new Option(name, name));
  $("st-format").textContent = `${(msg.sample_rate / 1000).toFixed(1)} kHz · ${msg.channels === 2 ? "stereo" : "mono"} · ` +
    `latency ${msg.latency_frames} frames`;
  buildControls();
  if (msg.models) $("ai-body").textContent = "models loaded: waiting for their first decision";
}

function onParams(msg) {
  Object.assign(state.params, msg.params);
  for (const id of Object.keys(msg.params)) showParam(id);
  const pr = state.params;
  $("ai-toggle").setAttribute("aria-pressed", pr["ai.enabled"] >= 0.5);
  $("bypass-toggle").setAttribute("aria-pressed", pr["bypass"] >= 0.5);
  $("target-val").textContent = fmt(pr["loudness.target_lufs"]) + (pr["loudness.auto"] >= 0.5 ? "" : " (off)");
  placeMarks();
  drawSpectrum();
}

function onMeters(m) {
  if (state.lastSeq && m.seq > state.lastSeq + 1) state.missed += m.seq - state.lastSeq - 1;
  state.lastSeq = m.seq;
  state.meters = m;
  state.frames++;
  setBar("momentary", m.momentary_lufs, LUFS_MIN, LUFS_MAX, "m-val");
  setBar("short", m.short_term_lufs, LUFS_MIN, LUFS_MAX, "s-val");
  setBar("integrated", m.integrated_lufs, LUFS_MIN, LUFS_MAX, "i-val");
  $("lra-val").textContent = fmt(m.lra_lu) + " LU";
  $("lgain-val").textContent = (m.loudness_gain_db > 0 ? "+" : "") + fmt(m.loudness_gain_db) + " dB";
  m.true_peak_dbtp.forEach((v, c) => setBar("tp" + c, v, TP_MIN, TP_MAX, `tp${c}-val`));
  if (m.true_peak_dbtp.length === 1) setBar("tp1", m.true_peak_dbtp[0], TP_MIN, TP_MAX, "tp1-val");
  setBar("comp", m.comp_gr_db, 0, GR_MAX_DB, "comp-val");
  setBar("lim", m.limiter_gr_db, 0, GR_MAX_DB, "lim-val");
  state.history.push([m.time_s, m.momentary_lufs, m.short_term_lufs]);
  while (state.history.length && state.history[0][0] < m.time_s - HISTORY_S) state.history.shift();
  if (!state.spectrum || state.spectrum.length !== m.spectrum_db.length) state.spectrum = m.spectrum_db.slice();
  // fast attack, slower release: readable bars without hiding transients
  state.spectrum = state.spectrum.map((old, i) => Math.max(m.spectrum_db[i], old * 0.75 + m.spectrum_db[i] * 0.25));
  const st = m.status;
  $("st-blocks").textContent = st.blocks;
  setCount("st-xruns", st.xruns);
  $("st-p50").textContent = fmt(st.callback_us_p50, 0);
  $("st-p99").textContent = fmt(st.callback_us_p99, 0);
  $("st-max").textContent = fmt(st.callback_us_max, 0);
  setCount("st-drops", st.ring_drops);
  setCount("st-sanitised", st.sanitised);
  setCount("st-faults", st.faults);
  $("st-missed").textContent = state.missed;
  showAi(m.ai);
  drawHistory();
  drawSpectrum();
}

function setCount(id, n) {
  const el = $(id);
  el.textContent = n;
  el.className = n > 0 ? "bad" : "";
}

function setBar(name, v, lo, hi, valId) {
  const el = document.querySelector(`[data-meter="${name}"] .fill`);
  const t = v === null ? 0 : Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
  el.style.height = (100 * t).toFixed(1) + "%";
  $(valId).textContent = fmt(v);
}

function placeMarks() {
  const target = state.params["loudness.target_lufs"], ceiling = state.params["limiter.ceiling_dbtp"];
  const auto = state.params["loudness.auto"] >= 0.5;
  document.querySelectorAll(".mark.target").forEach((el) => {
    el.style.top = (100 * (LUFS_MAX - target) / (LUFS_MAX - LUFS_MIN)).toFixed(1) + "%";
    el.style.display = auto ? "" : "none";
  });
  document.querySelectorAll(".mark.ceiling").forEach((el) => {
    el.style.top = (100 * (TP_MAX - ceiling) / (TP_MAX - TP_MIN)).toFixed(1) + "%";
  });
}

function makeScale(id, values, top) {
  const el = $(id);
  for (const v of values) {
    const s = document.createElement("span");
    s.style.top = (100 * top(v)).toFixed(1) + "%";
    s.textContent = String(v);
    el.append(s);
  }
}

const steps = (lo, hi, step) => Array.from({ length: Math.floor((hi - lo) / step) + 1 }, (_, i) => hi - i * step);

function showAi(ai) {
  const body = $("ai-body");
  if (!ai) {
    return;
  }
  body.textContent = "";
  body.className = "";
  const h = document.createElement("h3");
  h.textContent = ai.enabled ? "steering the chain" : "listening (AI off)";
  body.append(h);
  for (const [name, p] of Object.entries(ai.classes)) {
    const row = document.createElement("div");
    row.className = "row";
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("i");
    fill.style.width = (100 * p).toFixed(0) + "%";
    bar.append(fill);
    row.append(cell(name, ""), bar, cell((100 * p).toFixed(0) + "%", ""));
    body.append(row);
  }
  const th = document.createElement("h3");
  th.textContent = "targets";
  const list = document.createElement("div");
  list.className = "targets";
  list.textContent = Object.entries(ai.targets).map(([id, v]) =>
    `${id} ${state.registry[id] ? fmtParam(state.registry[id], v) : fmt(v, 2)}`).join("\n");
  list.style.whiteSpace = "pre";
  body.append(th, list);
}

// ---- canvases -----------------------------------------------------------------------------
function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return [ctx, canvas.clientWidth, canvas.clientHeight];
}

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const PAD = { l: 34, r: 34, t: 6, b: 18 };

function drawHistory() {
  const [ctx, w, h] = fitCanvas($("history"));
  ctx.clearRect(0, 0, w, h);
  const pw = w - PAD.l - 8, ph = h - PAD.t - PAD.b;
  const y = (v) => PAD.t + ph * (LUFS_MAX - v) / (LUFS_MAX - LUFS_MIN);
  const now = state.history.length ? state.history[state.history.length - 1][0] : 0;
  const x = (t) => PAD.l + pw * (1 - (now - t) / HISTORY_S);
  ctx.font = "10px DejaVu Sans Mono, monospace";
  ctx.fillStyle = css("--muted");
  ctx.strokeStyle = "#222a35";
  ctx.lineWidth = 1;
  for (let v = LUFS_MAX; v >= LUFS_MIN; v -= 6) {
    ctx.beginPath(); ctx.moveTo(PAD.l, y(v) + 0.5); ctx.lineTo(PAD.l + pw, y(v) + 0.5); ctx.stroke();
    ctx.fillText(String(v), 4, y(v) + 3);
  }
  for (let s = 0; s <= HISTORY_S; s += 10) {
    const xs = PAD.l + pw * (1 - s / HISTORY_S);
    ctx.fillText(s ? `-${s}s` : "now", Math.min(xs - 10, w - 26), h - 4);
  }
  if (state.params["loudness.auto"] >= 0.5) {
    ctx.strokeStyle = css("--warn");
    ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(PAD.l, y(state.params["loudness.target_lufs"]));
    ctx.lineTo(PAD.l + pw, y(state.params["loudness.target_lufs"])); ctx.stroke();
    ctx.setLineDash([]);
  }
  const line = (k, width, alpha) => {
    ctx.strokeStyle = css("--accent");
    ctx.globalAlpha = alpha;
    ctx.lineWidth = width;
    ctx.beginPath();
    let open = false;
    for (const pt of state.history) {
      if (pt[k] === null) { open = false; continue; }
      const yy = y(Math.max(LUFS_MIN, Math.min(LUFS_MAX, pt[k])));
      if (open) ctx.lineTo(x(pt[0]), yy); else ctx.moveTo(x(pt[0]), yy);
      open = true;
    }
    ctx.stroke();
    ctx.globalAlpha = 1;
  };
  line(1, 1, 0.5);
  line(2, 2.2, 1);
}

// RBJ cookbook biquad magnitude (dB) at f for the engine's shapes: 0 peaking, 1 low shelf, 2 high shelf.
function biquad(shape, fs, f0, gainDb, q) {
  const f = Math.min(Math.max(f0, 1), 0.49 * fs);
  const w0 = 2 * Math.PI * f / fs, cw = Math.cos(w0), alpha = Math.sin(w0) / (2 * q), a = Math.pow(10, gainDb / 40);
  let b0, b1, b2, a0, a1, a2;
  if (shape === 0) {
    b0 = 1 + alpha * a; b1 = -2 * cw; b2 = 1 - alpha * a; a0 = 1 + alpha / a; a1 = -2 * cw; a2 = 1 - alpha / a;
  } else {
    const sa = 2 * Math.sqrt(a) * alpha, s = shape === 1 ? 1 : -1;
    b0 = a * ((a + 1) - s * (a - 1) * cw + sa); b1 = s * 2 * a * ((a - 1) - s * (a + 1) * cw);
    b2 = a * ((a + 1) - s * (a - 1) * cw - sa); a0 = (a + 1) + s * (a - 1) * cw + sa;
    a1 = -s * 2 * ((a - 1) + s * (a + 1) * cw); a2 = (a + 1) + s * (a - 1) * cw - sa;
  }
  return [b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0];
}
function magDb(c, fs, f) {
  const w = 2 * Math.PI * f / fs;
  const c1 = Math.cos(w), s1 = Math.sin(w), c2 = Math.cos(2 * w), s2 = Math.sin(2 * w);
  const nr = c[0] + c[1] * c1 + c[2] * c2, ni = -(c[1] * s1 + c[2] * s2);
  const dr = 1 + c[3] * c1 + c[4] * c2, di = -(c[3] * s1 + c[4] * s2);
  return 10 * Math.log10((nr * nr + ni * ni) / (dr * dr + di * di));
}
function eqBands() {
  const fs = state.status ? state.status.sample_rate : 48000;
  const out = [];
  for (let b = 1; state.params[`eq.${b}.gain_db`] !== undefined; b++) out.push(b);
  return out.map((b) => ({
    b, f: state.params[`eq.${b}.freq_hz`], g: state.params[`eq.${b}.gain_db`],
    c: biquad(b === 1 ? 1 : b === out.length ? 2 : 0, fs, state.params[`eq.${b}.freq_hz`],
              state.params[`eq.${b}.gain_db`], state.params[`eq.${b}.q`]),
  }));
}
function eqResponseDb(bands, f) {
  const fs = state.status ? state.status.sample_rate : 48000;
  return f >= fs / 2 ? NaN : bands.reduce((acc, bd) => acc + magDb(bd.c, fs, f), 0);
}

function drawSpectrum() {
  if (!state.status) return;
  const [ctx, w, h] = fitCanvas($("spectrum"));
  ctx.clearRect(0, 0, w, h);
  const pw = w - PAD.l - PAD.r, ph = h - PAD.t - PAD.b;
  const x = (f) => PAD.l + pw * Math.log(f / F_MIN) / Math.log(F_MAX / F_MIN);
  const ys = (db) => PAD.t + ph * (SPEC_MAX_DB - db) / (SPEC_MAX_DB - SPEC_MIN_DB);
  const ye = (db) => PAD.t + ph * (0.5 - db / (2 * EQ_RANGE_DB));
  ctx.font = "10px DejaVu Sans Mono, monospace";
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#222a35";
  ctx.fillStyle = css("--muted");
  for (let db = SPEC_MAX_DB; db >= SPEC_MIN_DB; db -= 12) {
    ctx.beginPath(); ctx.moveTo(PAD.l, ys(db) + 0.5); ctx.lineTo(PAD.l + pw, ys(db) + 0.5); ctx.stroke();
    ctx.fillText(String(db), 4, ys(db) + 3);
  }
  for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
    ctx.beginPath(); ctx.moveTo(x(f) + 0.5, PAD.t); ctx.lineTo(x(f) + 0.5, PAD.t + ph); ctx.stroke();
    ctx.fillText(f >= 1000 ? `${f / 1000}k` : String(f), x(f) - 8, h - 4);
  }
  ctx.fillStyle = "#5b8fb0";
  for (const db of [EQ_RANGE_DB, 0, -EQ_RANGE_DB]) ctx.fillText((db > 0 ? "+" : "") + db, w - PAD.r + 4, ye(db) + 3);
  if (state.spectrum) {
    const centres = state.status.spectrum_hz;
    const grad = ctx.createLinearGradient(0, PAD.t, 0, PAD.t + ph);
    grad.addColorStop(0, "#b3e5fc"); grad.addColorStop(0.35, css("--accent")); grad.addColorStop(1, "#0d47a1");
    ctx.fillStyle = grad;
    centres.forEach((fc, i) => {
      const x0 = x(Math.max(F_MIN, fc * Math.pow(2, -1 / 6))) + 1, x1 = x(Math.min(F_MAX, fc * Math.pow(2, 1 / 6))) - 1;
      const top = ys(Math.max(SPEC_MIN_DB, Math.min(SPEC_MAX_DB, state.spectrum[i])));
      if (x1 > x0) ctx.fillRect(x0, top, x1 - x0, PAD.t + ph - top);
    });
  }
  const bands = eqBands();
  if (!bands.length) return;
  ctx.strokeStyle = "rgba(255,255,255,0.18)";
  ctx.beginPath(); ctx.moveTo(PAD.l, ye(0)); ctx.lineTo(PAD.l + pw, ye(0)); ctx.stroke();
  ctx.strokeStyle = css("--accent2");
  ctx.lineWidth = 2.2;
  ctx.beginPath();
  for (let i = 0; i <= 300; i++) {
    const f = F_MIN * Math.pow(F_MAX / F_MIN, i / 300);
    const g = eqResponseDb(bands, f);
    if (!isFinite(g)) break;
    const yy = ye(Math.max(-EQ_RANGE_DB, Math.min(EQ_RANGE_DB, g)));
    if (i) ctx.lineTo(x(f), yy); else ctx.moveTo(x(f), yy);
  }
  ctx.stroke();
  for (const bd of bands) {
    const g = Math.max(-EQ_RANGE_DB, Math.min(EQ_RANGE_DB, eqResponseDb(bands, bd.f)));
    ctx.fillStyle = "#10161d";
    ctx.strokeStyle = css("--accent2");
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(x(bd.f), ye(g), 7, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    ctx.fillStyle = css("--accent2");
    ctx.fillText(String(bd.b), x(bd.f) - 3, ye(g) + 3.5);
  }
}

// ---- connection ---------------------------------------------------------------------------
let errorTimer = null;
function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

function connect() {
  const token = new URLSearchParams(location.search).get("token");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` +
    (token ? `?token=${encodeURIComponent(token)}` : "");
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.connected = true;
    $("conn").className = "conn on";
    $("conn-text").textContent = location.host;
  };
  ws.onclose = () => {
    state.connected = false;
    $("conn").className = "conn off";
    $("conn-text").textContent = "disconnected: retrying";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "meters") onMeters(msg);
    else if (msg.type === "params") onParams(msg);
    else if (msg.type === "status") onStatus(msg);
    else if (msg.type === "error") showError(msg.message);
  };
}

window.addEventListener("DOMContentLoaded", () => {
  makeScale("lufs-scale", steps(LUFS_MIN, LUFS_MAX, 6), (v) => (LUFS_MAX - v) / (LUFS_MAX - LUFS_MIN));
  makeScale("tp-scale", steps(TP_MIN, TP_MAX, 3), (v) => (TP_MAX - v) / (TP_MAX - TP_MIN));
  makeScale("gr-scale", steps(0, GR_MAX_DB, 6), (v) => v / GR_MAX_DB);
  $("preset").addEventListener("change", (e) => {
    if (e.target.value) send({ type: "preset", name: e.target.value });
    e.target.value = "";
  });
  $("reset").addEventListener("click", () => { state.history = []; send({ type: "reset_integrated" }); });
  $("ai-toggle").addEventListener("click", () => send({ type: "ai", enabled: !(state.params["ai.enabled"] >= 0.5) }));
  $("bypass-toggle").addEventListener("click", () => setNow("bypass", state.params["bypass"] >= 0.5 ? 0 : 1));
  window.addEventListener("resize", () => { drawHistory(); drawSpectrum(); });
  connect();
});
