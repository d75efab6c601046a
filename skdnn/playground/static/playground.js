// skdnn Playground: the page. It keeps the state, mirrors it in the URL, asks
// the server (skdnn/playground) for frames and draws them like the TensorFlow
// Playground. Element ids and classes, the state's keys and the endpoints are
// the page's contract with the server and with the browser tests: keep them.
"use strict";

(() => {
  // ---------------------------------------------------------------- constants
  const ORANGE = [245, 147, 34]; // -1, class -1
  const WHITE = [255, 255, 255]; // 0
  const BLUE = [8, 119, 189]; // +1, class +1
  const NEURON_PX = 36; // CSS size of the small heat maps
  const OUTPUT_ALPHA = 0.7; // the big map is lighter than its points, as in the TF Playground
  const DPR = Math.min(2, window.devicePixelRatio || 1);
  const HASH_KEYS = [
    "problem", "dataset", "noise", "train_ratio", "batch_size", "features",
    "layers", "dropout", "activation", "optimizer", "learning_rate",
    "regularization_rate", "seed", "show_test", "discretize",
  ];
  const NAMES = {
    relu: "ReLU", tanh: "Tanh", sigmoid: "Sigmoid", linear: "Linear",
    sgd: "SGD", adam: "Adam",
    classification: "Classification", regression: "Regression",
    circle: "Circle", xor: "Exclusive or", gauss: "Gaussian", spiral: "Spiral",
    plane: "Plane", multigauss: "Multi Gaussian", csv: "Uploaded CSV",
  };
  // Curve networks: one per dropout value and per each of the curve's 3 splits.
  const CURVE_SPLITS = 3;

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const clone = (obj) => JSON.parse(JSON.stringify(obj));
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------- page state
  let options = null; // GET /api/options
  let state = null; // what the controls show, mirrored in location.hash
  let accepted = null; // the last state the server accepted (matches the drawn network)
  let frame = null; // the last frame received
  let data = null; // {points, domain, classes} from the last /api/reset answer
  let session = null;
  let playing = false;
  let loopRunning = false;
  let stepInFlight = null; // the one /api/step request allowed at a time
  let resetting = null; // the running reset, if any
  let lastCurve = undefined; // the last dropout curve drawn
  let resetAgain = false; // the state changed while a reset was running
  let generation = 0; // bumped by each reset: older step answers are dropped
  let builtSignature = null; // architecture the network DOM was built for
  let network = null; // {canvases: [[canvas]], links: [{path, k, i, j}], biases: [[el]]}
  let decoded = []; // decoded[column][index] = {bytes, res}: the frame's maps
  let featureMaps = {}; // client-side maps of every feature, for the greyed inputs
  let hovered = null; // {column, index} or {feature}: previewed on the big map
  let csvUpload = null; // {columns, rows} of the session's uploaded table
  let pointsLayer = null; // cached canvas with the points, and its key
  let lastDrawMs = 0;

  let resolveReady;
  const ready = new Promise((resolve) => { resolveReady = resolve; });

  window.playground = {
    get state() { return state; },
    get frame() { return frame; },
    get playing() { return playing; },
    // A reset or a step is on its way: the frame may not match the state yet.
    get curve() { return lastCurve; },
    get busy() { return resetting !== null || stepInFlight !== null; },
    ready,
    get drawMs() { return lastDrawMs; },
  };

  // ------------------------------------------------------------------ colours
  function mix(a, b, t) {
    return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * t));
  }

  function colorOf(v) {
    v = Math.max(-1, Math.min(1, v));
    return v < 0 ? mix(WHITE, ORANGE, -v) : mix(WHITE, BLUE, v);
  }

  function cssColor(v) {
    const [r, g, b] = colorOf(v);
    return `rgb(${r},${g},${b})`;
  }

  // Byte -> RGBA packed for a Uint32Array view of ImageData (little-endian).
  const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  function pack([r, g, b]) {
    return isLittleEndian
      ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0
      : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
  }
  const LUT = new Uint32Array(256);
  const LUT_DISCRETE = new Uint32Array(256);
  for (let b = 0; b < 256; b++) {
    const v = b / 127.5 - 1;
    LUT[b] = pack(colorOf(v));
    LUT_DISCRETE[b] = pack(v > 0 ? BLUE : ORANGE);
  }

  // ---------------------------------------------------------------- map paint
  function decodeMap(b64) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }

  // One small canvas per resolution: a map is put there at its own
  // resolution, then scaled onto its visible canvas with drawImage.
  const scratches = new Map();
  function scratch(res) {
    let s = scratches.get(res);
    if (!s) {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = res;
      const ctx = canvas.getContext("2d");
      const image = ctx.createImageData(res, res);
      s = { canvas, ctx, image, u32: new Uint32Array(image.data.buffer) };
      scratches.set(res, s);
    }
    return s;
  }

  // ``alpha`` < 1 lightens the map (over white) so that points stand out on it.
  function paintMap(canvas, map, discrete = false, alpha = 1) {
    const ctx = canvas.getContext("2d");
    if (!map || map.bytes.length !== map.res * map.res) {
      ctx.fillStyle = "#ddd";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      return;
    }
    const s = scratch(map.res);
    const lut = discrete ? LUT_DISCRETE : LUT;
    const { bytes, res } = map;
    for (let i = 0; i < res * res; i++) s.u32[i] = lut[bytes[i]];
    s.ctx.putImageData(s.image, 0, 0);
    ctx.imageSmoothingEnabled = !discrete;
    if (alpha < 1) {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = alpha;
    }
    ctx.drawImage(s.canvas, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }

  // The input features' maps, computed here so that inactive (greyed)
  // features show theirs too; the server's own ones are used when active.
  const FEATURE_FUNCTIONS = {
    x1: (a, b) => a,
    x2: (a, b) => b,
    "x1^2": (a, b) => a * a,
    "x2^2": (a, b) => b * b,
    x1x2: (a, b) => a * b,
    sinx1: (a) => Math.sin(a),
    sinx2: (a, b) => Math.sin(b),
  };

  function computeFeatureMaps(domain, res = 24) {
    const maps = {};
    for (const [name, fn] of Object.entries(FEATURE_FUNCTIONS)) {
      const values = new Float64Array(res * res);
      let top = 0;
      for (let r = 0; r < res; r++) {
        const x2 = domain.x2[1] - ((r + 0.5) / res) * (domain.x2[1] - domain.x2[0]);
        for (let c = 0; c < res; c++) {
          const x1 = domain.x1[0] + ((c + 0.5) / res) * (domain.x1[1] - domain.x1[0]);
          const v = fn(x1, x2);
          values[r * res + c] = v;
          top = Math.max(top, Math.abs(v));
        }
      }
      const bytes = new Uint8Array(res * res);
      for (let i = 0; i < values.length; i++) {
        bytes[i] = Math.round(((top ? values[i] / top : 0) + 1) * 127.5);
      }
      maps[name] = { bytes, res };
    }
    return maps;
  }

  // ------------------------------------------------------------------- server
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, body, { method = "POST", contentType = "application/json" } = {}) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: body === undefined ? {} : { "Content-Type": contentType },
        body: body === undefined ? undefined
          : contentType === "application/json" ? JSON.stringify(body) : body,
      });
    } catch (e) {
      throw new ApiError("Cannot reach the Playground server: is it still running?", 0);
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (e) {
      answer = null;
    }
    if (!response.ok) {
      const message = answer && answer.error
        ? answer.error : `The server answered ${response.status} to ${path}.`;
      throw new ApiError(message, response.status);
    }
    if (answer === null) throw new ApiError(`The server's answer to ${path} is not JSON.`, response.status);
    return answer;
  }

  // ------------------------------------------------------------------ message
  function showError(text) {
    const el = $("#message");
    el.textContent = text;
    el.classList.add("error");
  }

  function clearMessage() {
    const el = $("#message");
    el.textContent = "";
    el.classList.remove("error");
  }

  // --------------------------------------------------------------------- hash
  function encodeHash(st) {
    return HASH_KEYS.map((key) => {
      let v = st[key];
      if (Array.isArray(v)) v = v.map((x) => encodeURIComponent(String(x))).join(",");
      else if (typeof v === "boolean") v = v ? "1" : "0";
      else v = encodeURIComponent(String(v));
      return `${key}=${v}`;
    }).join("&");
  }

  function updateHash() {
    const hash = "#" + encodeHash(state);
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  // The state in the URL over the defaults; bad values are sent as they are,
  // so that the server's message names them.
  function parseHash(defaults) {
    const st = clone(defaults);
    const given = new Set();
    const text = location.hash.replace(/^#/, "");
    for (const part of text ? text.split("&") : []) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      let key;
      try {
        key = decodeURIComponent(part.slice(0, eq));
      } catch (e) {
        continue;
      }
      const raw = part.slice(eq + 1);
      if (!HASH_KEYS.includes(key)) continue;
      const decode = (s) => {
        try { return decodeURIComponent(s); } catch (e) { return s; }
      };
      const d = defaults[key];
      given.add(key);
      if (Array.isArray(d)) {
        const items = raw === "" ? [] : raw.split(",").map(decode);
        st[key] = key === "features" ? items : items.map((x) => (x.trim() === "" ? x : Number(x)));
      } else if (typeof d === "boolean") {
        st[key] = raw === "1" || raw === "true";
      } else if (typeof d === "number") {
        const n = Number(decode(raw));
        st[key] = raw !== "" && Number.isFinite(n) ? n : decode(raw);
      } else {
        st[key] = decode(raw);
      }
    }
    // A link cannot carry an uploaded file: fall back to the problem's first set.
    const sets = (options.choices.dataset[st.problem] || []).filter((n) => n !== "csv");
    if (st.dataset === "csv" || (given.has("problem") && !given.has("dataset"))) {
      st.dataset = sets[0] || defaults.dataset;
    }
    if (given.has("layers") && !given.has("dropout") && Array.isArray(st.layers)) {
      st.dropout = st.layers.map(() => 0);
    }
    st.csv = null;
    return st;
  }

  // ------------------------------------------------------------------ formats
  function formatEpoch(n) {
    const s = String(n).padStart(6, "0");
    return s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  const fmt3 = (x) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(3) : "–");

  function label(value) {
    return NAMES[value] || String(value);
  }

  // ----------------------------------------------------------------- controls
  function fillSelect(select, values, current) {
    select.innerHTML = "";
    for (const v of values) {
      const option = document.createElement("option");
      option.value = String(v);
      option.textContent = label(v);
      select.appendChild(option);
    }
    if (current !== undefined) setSelect(select, current);
  }

  function setSelect(select, value) {
    const match = Array.from(select.options).find(
      (o) => o.value === String(value) || Number(o.value) === value,
    );
    if (match) select.value = match.value;
  }

  function setupSlider(id, key, choices) {
    const input = $("#" + id);
    const out = $("#" + id + "-value");
    const values = Array.isArray(choices) ? choices : [];
    if (values.length >= 2) {
      input.min = String(values[0]);
      input.max = String(values[values.length - 1]);
      // batch_size gives [min, max]; the others list every value.
      input.step = values.length === 2 ? "1" : String(values[1] - values[0]);
    }
    const show = () => { out.textContent = key === "train_ratio" ? `${input.value}%` : input.value; };
    input.addEventListener("input", show);
    input.addEventListener("change", () => {
      show();
      state[key] = Number(input.value);
      changed(true);
    });
  }

  function setupControls() {
    const c = options.choices;
    const selects = [
      ["learning-rate", "learning_rate", c.learning_rate, Number],
      ["activation", "activation", c.activation, String],
      ["optimizer", "optimizer", c.optimizer, String],
      ["regularization-rate", "regularization_rate", c.regularization_rate, Number],
    ];
    for (const [id, key, values, parse] of selects) {
      const select = $("#" + id);
      fillSelect(select, values);
      select.addEventListener("change", () => {
        state[key] = parse(select.value);
        changed(true);
      });
    }
    const problem = $("#problem");
    fillSelect(problem, c.problem);
    problem.addEventListener("change", () => {
      state.problem = problem.value;
      // An uploaded table may serve either problem (if its target suits it:
      // else the problem's first set); a built-in set may not.
      const first = datasetsOf(state.problem)[0];
      if (state.dataset !== "csv") {
        state.dataset = first;
        changed(true);
      } else {
        updateHash();
        syncControls();
        requestReset({ ...clone(state), dataset: first, csv: null });
      }
    });

    setupSlider("noise", "noise", c.noise);
    setupSlider("train-ratio", "train_ratio", c.train_ratio);
    setupSlider("batch-size", "batch_size", c.batch_size);

    $("#regenerate").addEventListener("click", () => {
      state.seed = Math.floor(Math.random() * 1000000);
      changed(true);
    });
    $("#reset").addEventListener("click", () => changed(true));
    $("#play").addEventListener("click", () => (playing ? pause() : play()));
    $("#step").addEventListener("click", stepOnce);

    $("#add-layer").addEventListener("click", () => {
      if (state.layers.length >= c.max_layers) return;
      state.layers.push(2);
      state.dropout.push(0);
      changed(true);
    });
    $("#remove-layer").addEventListener("click", () => {
      if (!state.layers.length) return;
      state.layers.pop();
      state.dropout.pop();
      changed(true);
    });

    // Per-layer buttons are rebuilt with the network: delegate their clicks.
    $("#hidden-layers").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      const layer = event.target.closest(".layer");
      if (!button || !layer) return;
      const i = Number(layer.dataset.layer);
      if (i >= state.layers.length) return;
      if (button.classList.contains("add-neuron") && state.layers[i] < c.max_neurons) {
        state.layers[i] += 1;
        changed(true);
      } else if (button.classList.contains("remove-neuron") && state.layers[i] > 1) {
        state.layers[i] -= 1;
        changed(true);
      }
    });
    $("#hidden-layers").addEventListener("change", (event) => {
      const select = event.target.closest("select.dropout");
      const layer = event.target.closest(".layer");
      if (!select || !layer) return;
      const i = Number(layer.dataset.layer);
      if (i >= state.dropout.length) return;
      state.dropout[i] = Number(select.value);
      changed(true);
    });
    $("#features").addEventListener("click", (event) => {
      const el = event.target.closest(".feature");
      if (!el) return;
      const name = el.dataset.name;
      if (state.features.includes(name)) {
        if (state.features.length === 1) {
          showError("The network needs at least one input feature.");
          return;
        }
        state.features = state.features.filter((f) => f !== name);
      } else {
        state.features = c.features.filter((f) => f === name || state.features.includes(f));
      }
      changed(true);
    });

    $("#show-test").addEventListener("change", (event) => {
      state.show_test = event.target.checked;
      changed(false);
    });
    $("#discretize").addEventListener("change", (event) => {
      state.discretize = event.target.checked;
      changed(false);
    });

    $("#csv-file").addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      if (file) uploadCsv(file);
    });
    for (const id of ["csv-x1", "csv-x2", "csv-target"]) {
      $("#" + id).addEventListener("change", useCsv);
    }

    $("#copy-python").addEventListener("click", exportPython);
    $("#dropout-curve").addEventListener("click", dropoutCurve);

    // Neuron hover: preview its map on the big output map, like the TF Playground.
    const network = $("#network");
    network.addEventListener("mouseover", (event) => {
      const canvas = event.target.closest("canvas.neuron, canvas.feature-map");
      if (!canvas) return;
      hovered = canvas.classList.contains("neuron")
        ? { column: Number(canvas.dataset.column), index: Number(canvas.dataset.index) }
        : { feature: canvas.closest(".feature").dataset.name };
      drawOutput();
    });
    network.addEventListener("mouseout", (event) => {
      if (!hovered || !event.target.closest("canvas")) return;
      hovered = null;
      drawOutput();
    });
    const tooltip = $("#link-tooltip");
    $("#links").addEventListener("mousemove", (event) => {
      const path = event.target.closest("path.link");
      if (!path || !frame) return;
      const link = network ? network.links[Number(path.dataset.link)] : null;
      const w = link && frame.weights[link.k] && frame.weights[link.k][link.i]
        ? frame.weights[link.k][link.i][link.j] : undefined;
      tooltip.textContent = `weight ${typeof w === "number" ? w.toFixed(3) : "?"}`;
      tooltip.style.left = `${event.clientX + 12}px`;
      tooltip.style.top = `${event.clientY + 12}px`;
      tooltip.hidden = false;
    });
    $("#links").addEventListener("mouseout", () => { tooltip.hidden = true; });

    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        layoutLinks();
        sizeCanvases();
        if (frame) drawFrame();
      }, 100);
    });
  }

  function datasetsOf(problem) {
    return (options.choices.dataset[problem] || []).filter((n) => n !== "csv");
  }

  // Copy the state into every control (cheap; called after each change).
  function syncControls() {
    const c = options.choices;
    setSelect($("#learning-rate"), state.learning_rate);
    setSelect($("#activation"), state.activation);
    setSelect($("#optimizer"), state.optimizer);
    setSelect($("#regularization-rate"), state.regularization_rate);
    setSelect($("#problem"), state.problem);
    for (const [id, key] of [["noise", "noise"], ["train-ratio", "train_ratio"], ["batch-size", "batch_size"]]) {
      $("#" + id).value = String(state[key]);
      $("#" + id + "-value").textContent = key === "train_ratio" ? `${state[key]}%` : String(state[key]);
    }
    $("#show-test").checked = !!state.show_test;
    $("#discretize").checked = !!state.discretize;
    buildDatasets();
    for (const el of $$(".dataset")) el.classList.toggle("selected", el.dataset.name === state.dataset);
    for (const el of $$(".feature")) el.classList.toggle("active", state.features.includes(el.dataset.name));

    const n = state.layers.length;
    $("#layer-count").textContent = String(n);
    $("#layer-count-label").textContent = n === 1 ? "hidden layer" : "hidden layers";
    $("#add-layer").disabled = n >= c.max_layers;
    $("#remove-layer").disabled = n === 0;
    for (const layer of $$(".layer")) {
      const i = Number(layer.dataset.layer);
      const size = state.layers[i];
      if (size === undefined) continue;
      $(".neuron-count", layer).textContent = String(size);
      $(".neuron-count-label", layer).textContent = size === 1 ? "neuron" : "neurons";
      $(".add-neuron", layer).disabled = size >= c.max_neurons;
      $(".remove-neuron", layer).disabled = size <= 1;
      setSelect($("select.dropout", layer), state.dropout[i]);
    }
    $("#csv-target-label").textContent = state.problem === "regression" ? "target" : "label";
    const names = $$(".score-name");
    for (const el of names) el.textContent = frame && frame.score ? frame.score.name : "score";
  }

  // A control changed the state: redraw only, or rebuild data and network.
  function changed(needsReset) {
    updateHash();
    syncControls();
    if (needsReset) {
      requestReset();
    } else {
      pointsLayer = null;
      drawOutput();
    }
  }

  // ----------------------------------------------------------------- datasets
  // Seeded generator: the thumbnails look the same on every load.
  function prng(seed) {
    return () => {
      seed |= 0;
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // Thumbnails only: points like the server's data sets, in [-6, 6]^2.
  function thumbnailPoints(name) {
    const rand = prng(7);
    const u = (a, b) => a + (b - a) * rand();
    const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const pts = [];
    const n = 160;
    for (let i = 0; i < n; i++) {
      if (name === "circle") {
        const inside = i % 2 === 0;
        const r = inside ? u(0, 2.5) : u(3.5, 5);
        const t = u(0, 2 * Math.PI);
        pts.push([r * Math.sin(t), r * Math.cos(t), inside ? 1 : -1]);
      } else if (name === "xor") {
        let x = u(-5, 5); let y = u(-5, 5);
        x += x > 0 ? 0.3 : -0.3; y += y > 0 ? 0.3 : -0.3;
        pts.push([x, y, x * y >= 0 ? 1 : -1]);
      } else if (name === "gauss") {
        const pos = i % 2 === 0;
        const c = pos ? 2 : -2;
        pts.push([c + normal(), c + normal(), pos ? 1 : -1]);
      } else if (name === "spiral") {
        const pos = i % 2 === 0;
        const k = i / n;
        const r = k * 5;
        const t = 1.75 * k * 2 * Math.PI + (pos ? 0 : Math.PI);
        pts.push([r * Math.sin(t), r * Math.cos(t), pos ? 1 : -1]);
      } else if (name === "plane") {
        const x = u(-6, 6); const y = u(-6, 6);
        pts.push([x, y, Math.max(-1, Math.min(1, (x + y) / 8))]);
      } else if (name === "multigauss") {
        const x = u(-6, 6); const y = u(-6, 6);
        const centres = [[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]];
        let v = 0;
        for (const [cx, cy, s] of centres) v += s * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 2);
        pts.push([x, y, Math.max(-1, Math.min(1, v))]);
      }
    }
    return pts;
  }

  let builtDatasets = null;
  function buildDatasets() {
    const names = datasetsOf(state.problem);
    if (csvUpload) names.push("csv");
    const key = names.join(",");
    if (builtDatasets === key) return;
    builtDatasets = key;
    const box = $("#datasets");
    box.innerHTML = "";
    for (const name of names) {
      const el = document.createElement("div");
      el.className = "dataset";
      el.dataset.name = name;
      el.title = label(name);
      el.setAttribute("role", "button");
      el.tabIndex = 0;
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 48 * DPR;
      el.appendChild(canvas);
      const caption = document.createElement("span");
      caption.className = "dataset-label";
      caption.textContent = name === "csv" ? "CSV" : label(name);
      el.appendChild(caption);
      box.appendChild(el);
      drawThumbnail(canvas, name);
      const choose = () => {
        if (state.dataset === name) return;
        if (name === "csv") {
          state.csv = csvColumns();
        }
        state.dataset = name;
        changed(true);
      };
      el.addEventListener("click", choose);
      el.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") choose(); });
    }
  }

  function drawThumbnail(canvas, name) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width;
    ctx.fillStyle = "#f4f4f4";
    ctx.fillRect(0, 0, w, w);
    if (name === "csv") {
      ctx.fillStyle = "#777";
      ctx.font = `${12 * DPR}px sans-serif`;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("CSV", w / 2, w / 2);
      return;
    }
    for (const [x, y, v] of thumbnailPoints(name)) {
      ctx.fillStyle = cssColor(v);
      ctx.beginPath();
      ctx.arc(((x + 6) / 12) * w, ((6 - y) / 12) * w, 1.6 * DPR, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // ------------------------------------------------------------------ network
  function architecture(f) {
    return JSON.stringify(f.columns.map((col) => (col.kind === "input" ? col.names : col.maps.length)));
  }

  function makeNeuronCanvas(column, index, cls = "neuron") {
    const node = document.createElement("div");
    node.className = "node";
    const canvas = document.createElement("canvas");
    canvas.className = cls;
    canvas.width = canvas.height = Math.round(NEURON_PX * DPR);
    if (cls === "neuron") {
      canvas.dataset.column = String(column);
      canvas.dataset.index = String(index);
    }
    node.appendChild(canvas);
    return { node, canvas };
  }

  function buildNetwork(f) {
    const c = options.choices;
    const cols = f.columns;
    const inputNames = cols[0].names || [];
    const canvases = cols.map(() => []);
    const biases = cols.map(() => []);
    hovered = null;

    // Features: every feature, the active ones as the network's input neurons.
    const features = $("#features");
    features.innerHTML = "";
    const header = document.createElement("div");
    header.className = "col-header";
    features.appendChild(header);
    for (const name of c.features) {
      const el = document.createElement("div");
      el.className = inputNames.includes(name) ? "feature active" : "feature";
      el.dataset.name = name;
      el.title = "Click to turn this feature on or off";
      const index = inputNames.indexOf(name);
      const { node, canvas } = index >= 0
        ? makeNeuronCanvas(0, index) : makeNeuronCanvas(0, -1, "feature-map");
      const text = document.createElement("span");
      text.className = "feature-label";
      text.textContent = (c.feature_labels && c.feature_labels[name]) || name;
      el.appendChild(text);
      el.appendChild(node);
      features.appendChild(el);
      if (index >= 0) canvases[0][index] = canvas;
      else paintMap(canvas, featureMaps[name]);
    }

    // Hidden layers: a header (+/-, count, dropout) over a column of neurons.
    const hidden = $("#hidden-layers");
    hidden.innerHTML = "";
    for (let k = 1; k < cols.length - 1; k++) {
      const i = k - 1;
      const layer = document.createElement("div");
      layer.className = "layer net-column";
      layer.dataset.layer = String(i);
      const dropoutOptions = c.dropout.map((p) => `<option value="${p}">${p}</option>`).join("");
      layer.innerHTML = `
        <div class="col-header">
          <div class="neuron-buttons">
            <button class="add-neuron round-button small" type="button" title="Add a neuron">+</button>
            <button class="remove-neuron round-button small" type="button" title="Remove a neuron">&minus;</button>
          </div>
          <div class="neurons-text"><span class="neuron-count">${cols[k].maps.length}</span>
            <span class="neuron-count-label">neurons</span></div>
          <label class="dropout-label">dropout <select class="dropout">${dropoutOptions}</select></label>
        </div>`;
      setSelect($("select.dropout", layer), cols[k].dropout);
      for (let j = 0; j < cols[k].maps.length; j++) {
        const { node, canvas } = makeNeuronCanvas(k, j);
        const bias = document.createElement("div");
        bias.className = "bias";
        node.appendChild(bias);
        layer.appendChild(node);
        canvases[k][j] = canvas;
        biases[k][j] = bias;
      }
      hidden.appendChild(layer);
    }

    // The output neuron; its map is drawn large in the OUTPUT column.
    const out = $("#output-node");
    out.innerHTML = '<div class="col-header"><div class="neurons-text">output</div></div>';
    const k = cols.length - 1;
    for (let j = 0; j < cols[k].maps.length; j++) {
      const { node, canvas } = makeNeuronCanvas(k, j);
      const bias = document.createElement("div");
      bias.className = "bias";
      node.appendChild(bias);
      out.appendChild(node);
      canvases[k][j] = canvas;
      biases[k][j] = bias;
    }

    // Links: one path per weight, from column k's neuron i to k+1's neuron j.
    const svg = $("#links");
    svg.innerHTML = "";
    const links = [];
    for (let kk = 0; kk < cols.length - 1; kk++) {
      for (let i = 0; i < canvases[kk].length; i++) {
        for (let j = 0; j < canvases[kk + 1].length; j++) {
          const path = document.createElementNS(SVG_NS, "path");
          path.setAttribute("class", "link");
          path.dataset.link = String(links.length);
          svg.appendChild(path);
          links.push({ path, k: kk, i, j, width: -1, sign: 0 });
        }
      }
    }
    network = { canvases, biases, links };
    builtSignature = architecture(f);
    layoutLinks();
  }

  // Curves between neuron centres; only when the layout changes.
  function layoutLinks() {
    if (!network) return;
    const box = $("#network");
    const origin = box.getBoundingClientRect();
    const svg = $("#links");
    svg.setAttribute("width", String(box.scrollWidth));
    svg.setAttribute("height", String(box.scrollHeight));
    const anchors = network.canvases.map((col) => col.map((canvas) => {
      const r = canvas.getBoundingClientRect();
      return {
        left: r.left - origin.left + box.scrollLeft,
        right: r.right - origin.left + box.scrollLeft,
        y: (r.top + r.bottom) / 2 - origin.top + box.scrollTop,
      };
    }));
    for (const link of network.links) {
      const a = anchors[link.k][link.i];
      const b = anchors[link.k + 1][link.j];
      if (!a || !b) continue;
      const x1 = a.right; const x2 = b.left;
      const dx = (x2 - x1) / 2;
      link.path.setAttribute("d",
        `M${x1.toFixed(1)},${a.y.toFixed(1)} C${(x1 + dx).toFixed(1)},${a.y.toFixed(1)} `
        + `${(x2 - dx).toFixed(1)},${b.y.toFixed(1)} ${x2.toFixed(1)},${b.y.toFixed(1)}`);
    }
  }

  function updateLinks(f) {
    for (const link of network.links) {
      const row = f.weights[link.k] && f.weights[link.k][link.i];
      const w = row ? row[link.j] : 0;
      const width = Math.round(Math.max(0.5, Math.min(6, Math.abs(w) * 2)) * 4) / 4;
      const sign = w < 0 ? -1 : 1;
      if (width !== link.width) {
        link.path.style.strokeWidth = `${width}px`;
        link.width = width;
      }
      if (sign !== link.sign) {
        link.path.style.stroke = sign < 0 ? "#f59322" : "#0877bd";
        link.sign = sign;
      }
    }
    for (let k = 1; k < network.biases.length; k++) {
      const row = f.biases[k - 1] || [];
      network.biases[k].forEach((el, j) => {
        const b = row[j] || 0;
        el.style.backgroundColor = b < 0 ? "#f59322" : "#0877bd";
        el.style.opacity = String(Math.min(1, 0.25 + Math.abs(b)));
      });
    }
  }

  // -------------------------------------------------------------------- frame
  function decodeFrame(f) {
    decoded = f.columns.map((col) => col.maps.map((b64) => ({ bytes: decodeMap(b64), res: col.resolution })));
  }

  function drawFrame() {
    const t0 = performance.now();
    const f = frame;
    if (architecture(f) !== builtSignature) buildNetwork(f);
    decodeFrame(f);
    $("#epoch").textContent = formatEpoch(f.epoch);
    $("#loss-train").textContent = fmt3(f.loss && f.loss.train);
    $("#loss-test").textContent = fmt3(f.loss && f.loss.test);
    $("#score-train").textContent = fmt3(f.score && f.score.train);
    $("#score-test").textContent = fmt3(f.score && f.score.test);
    for (const el of $$(".score-name")) el.textContent = f.score ? f.score.name : "score";
    network.canvases.forEach((col, k) => col.forEach((canvas, j) => {
      if (canvas) paintMap(canvas, decoded[k] && decoded[k][j]);
    }));
    updateLinks(f);
    drawLossCurve(f.history || []);
    drawOutput();
    lastDrawMs = performance.now() - t0;
  }

  // ------------------------------------------------------------- output map
  function sizeCanvases() {
    for (const id of ["output", "loss-curve", "curve"]) {
      const canvas = $("#" + id);
      const w = canvas.clientWidth || Number(canvas.getAttribute("width"));
      const h = canvas.clientHeight || Number(canvas.getAttribute("height"));
      if (canvas.width !== Math.round(w * DPR)) canvas.width = Math.round(w * DPR);
      if (canvas.height !== Math.round(h * DPR)) canvas.height = Math.round(h * DPR);
    }
    pointsLayer = null;
  }

  // Regression targets share the maps' colour scale; a CSV target may not
  // lie in [-1, 1], so it is divided by its largest magnitude.
  function pointScale() {
    if (!data || state.problem !== "regression") return 1;
    let top = 0;
    for (const set of [data.points.train, data.points.test]) {
      for (const p of set) top = Math.max(top, Math.abs(p[2]));
    }
    return top > 1 ? 1 / top : 1;
  }

  function drawPointsLayer(width, height) {
    const key = `${width}x${height}:${state.show_test}:${data ? data.id : ""}`;
    if (pointsLayer && pointsLayer.key === key) return pointsLayer.canvas;
    const canvas = (pointsLayer && pointsLayer.canvas) || document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    if (data && data.points && data.domain) {
      const { x1, x2 } = data.domain;
      const scale = pointScale();
      const radius = 3.2 * DPR;
      const sets = [[data.points.train, "#ffffff"]];
      if (state.show_test) sets.push([data.points.test, "#000000"]);
      ctx.lineWidth = 1 * DPR;
      for (const [points, outline] of sets) {
        ctx.strokeStyle = outline;
        for (const [a, b, y] of points) {
          const px = ((a - x1[0]) / (x1[1] - x1[0])) * width;
          const py = ((x2[1] - b) / (x2[1] - x2[0])) * height;
          if (outline === "#ffffff") {
            // A faint dark rim keeps white-outlined points visible on white.
            ctx.fillStyle = "rgba(0,0,0,0.25)";
            ctx.beginPath();
            ctx.arc(px, py, radius + 1.2 * DPR, 0, 2 * Math.PI);
            ctx.fill();
          }
          ctx.fillStyle = cssColor(y * scale);
          ctx.beginPath();
          ctx.arc(px, py, radius, 0, 2 * Math.PI);
          ctx.fill();
          ctx.stroke();
        }
      }
    }
    pointsLayer = { key, canvas };
    return canvas;
  }

  function drawOutput() {
    const canvas = $("#output");
    if (!frame || !decoded.length) return;
    let map = null;
    let discrete = false;
    if (hovered && hovered.feature) {
      map = featureMaps[hovered.feature];
    } else if (hovered && decoded[hovered.column]) {
      map = decoded[hovered.column][hovered.index];
    }
    const outputColumn = decoded.length - 1;
    if (!map) {
      map = decoded[outputColumn][0];
      discrete = !!state.discretize;
    } else if (hovered && hovered.column === outputColumn) {
      discrete = !!state.discretize;
    }
    paintMap(canvas, map, discrete, OUTPUT_ALPHA);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(drawPointsLayer(canvas.width, canvas.height), 0, 0);
  }

  // Ticks on the output map's axes, from the plane the maps cover.
  function niceTicks(lo, hi, count = 6) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9; t += step) ticks.push(Math.round(t * 1e6) / 1e6);
    return ticks;
  }

  function drawAxes(domain) {
    const svg = $("#output-axes");
    const canvas = $("#output");
    const size = canvas.clientWidth || 300;
    const left = canvas.offsetLeft; const top = canvas.offsetTop;
    const parts = [];
    for (const t of niceTicks(domain.x1[0], domain.x1[1])) {
      const x = left + ((t - domain.x1[0]) / (domain.x1[1] - domain.x1[0])) * size;
      parts.push(`<line x1="${x}" x2="${x}" y1="${top + size}" y2="${top + size + 4}"/>`
        + `<text x="${x}" y="${top + size + 14}" text-anchor="middle">${t}</text>`);
    }
    for (const t of niceTicks(domain.x2[0], domain.x2[1])) {
      const y = top + ((domain.x2[1] - t) / (domain.x2[1] - domain.x2[0])) * size;
      parts.push(`<line x1="${left - 4}" x2="${left}" y1="${y}" y2="${y}"/>`
        + `<text x="${left - 6}" y="${y + 3}" text-anchor="end">${t}</text>`);
    }
    svg.innerHTML = parts.join("");
  }

  function drawLegend() {
    const canvas = $("#legend-bar");
    const ctx = canvas.getContext("2d");
    for (let x = 0; x < canvas.width; x++) {
      ctx.fillStyle = cssColor((x / (canvas.width - 1)) * 2 - 1);
      ctx.fillRect(x, 0, 1, canvas.height);
    }
  }

  function updateLegend() {
    const el = $("#classes-legend");
    if (state.problem === "classification" && data && data.classes) {
      el.innerHTML = "";
      const [neg, pos] = data.classes;
      el.append("orange: class ", Object.assign(document.createElement("b"), { textContent: neg }),
        ", blue: class ", Object.assign(document.createElement("b"), { textContent: pos }));
      $("#legend-low").textContent = "-1";
      $("#legend-high").textContent = "1";
    } else if (data) {
      const scale = pointScale();
      el.textContent = scale < 1 ? `points: target / ${(1 / scale).toPrecision(3)}` : "";
      $("#legend-low").textContent = "-1";
      $("#legend-high").textContent = "1";
    }
  }

  // --------------------------------------------------------------- loss curve
  function drawLossCurve(history) {
    const canvas = $("#loss-curve");
    const ctx = canvas.getContext("2d");
    const w = canvas.width; const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    if (history.length < 2) return;
    let top = 0;
    for (const [, a, b] of history) top = Math.max(top, Number.isFinite(a) ? a : 0, Number.isFinite(b) ? b : 0);
    if (!(top > 0)) top = 1;
    const last = history[history.length - 1][0] || 1;
    const first = history[0][0];
    // At most ~2 points per pixel: long histories stay cheap to draw.
    const stride = Math.max(1, Math.floor(history.length / (2 * w)));
    const pad = 2 * DPR;
    for (const [column, colour] of [[1, "#999999"], [2, "#000000"]]) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.2 * DPR;
      ctx.beginPath();
      for (let i = 0; i < history.length; i += stride) {
        const row = history[i];
        const x = ((row[0] - first) / (last - first || 1)) * (w - 2 * pad) + pad;
        const y = h - pad - (Math.min(row[column], top) / top) * (h - 2 * pad);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
  }

  // ----------------------------------------------------------------- requests
  function adoptAnswer(f, { adoptState }) {
    session = f.session || session;
    frame = f;
    if (f.points || f.domain) {
      data = {
        id: (data ? data.id : 0) + 1,
        points: f.points || { train: [], test: [] },
        domain: f.domain || (data && data.domain) || { x1: [-6, 6], x2: [-6, 6] },
        classes: f.classes || null,
      };
      // The network sees an uploaded file's columns rescaled to the toy sets'
      // plane (the server's MinMaxScaler), so its features are drawn there.
      featureMaps = computeFeatureMaps(
        f.state && f.state.dataset === "csv" ? { x1: [-6, 6], x2: [-6, 6] } : data.domain,
      );
      pointsLayer = null;
      builtSignature = null; // greyed feature maps depend on the domain
      drawAxes(data.domain);
    }
    if (f.state && adoptState) {
      // The user may have ticked these while the answer travelled.
      const { show_test: showTest, discretize } = state;
      state = clone(f.state);
      state.show_test = showTest;
      state.discretize = discretize;
      accepted = clone(f.state);
    }
    drawFrame();
    updateLegend();
    syncControls();
    updateHash();
  }

  function postReset(st) {
    return api("/api/reset", { session, state: st });
  }

  // Reset with the current state: pause, wait for the step in flight, and
  // coalesce the changes made meanwhile into one more reset. ``fallback``, a
  // state tried when the server refuses this one, gets the user out of a
  // dead end (an uploaded file whose target suits only the other problem).
  let resetFallback = null;
  function requestReset(fallback = null) {
    pause();
    generation++;
    resetFallback = fallback;
    if (resetting) {
      resetAgain = true;
      return resetting;
    }
    resetting = (async () => {
      try {
        do {
          resetAgain = false;
          if (stepInFlight) await stepInFlight;
          let answer = null;
          let error = null;
          try {
            answer = await postReset(clone(state));
          } catch (e) {
            error = e;
          }
          const fallbackState = resetFallback;
          if (error && fallbackState && !resetAgain) {
            try {
              answer = await postReset(clone(fallbackState));
            } catch (e) {
              answer = null;
            }
          }
          resetFallback = null;
          if (resetAgain) continue;
          if (answer) {
            clearMessage();
            adoptAnswer(answer, { adoptState: true });
            if (error) showError(`${error.message} (Showing ${label(fallbackState.dataset)} instead.)`);
          } else {
            showError(error.message);
            // The previous network stays: so do the controls that built it.
            if (accepted) {
              const { show_test: showTest, discretize } = state;
              state = clone(accepted);
              state.show_test = showTest;
              state.discretize = discretize;
              syncControls();
              updateHash();
            }
          }
        } while (resetAgain);
      } finally {
        resetting = null;
      }
    })();
    return resetting;
  }

  // One /api/step at a time; answers to an older network are dropped.
  function doStep() {
    if (stepInFlight) return stepInFlight;
    const gen = generation;
    stepInFlight = (async () => {
      try {
        const f = await api("/api/step", { session, epochs: 1 });
        if (gen === generation) {
          // A step answers with its own epochs' rows of the history only.
          f.history = (frame && frame.history ? frame.history : []).concat(f.history || []);
          frame = f;
          drawFrame();
        }
      } catch (e) {
        if (gen !== generation) return;
        if (e.status === 404) {
          // The session expired: start again from the page's state.
          try {
            session = null;
            const f = await postReset(clone(state));
            if (gen === generation) adoptAnswer(f, { adoptState: true });
          } catch (e2) {
            showError(e2.message);
            pause();
          }
        } else {
          showError(e.message);
          pause();
        }
      } finally {
        stepInFlight = null;
      }
    })();
    return stepInFlight;
  }

  async function loop() {
    if (loopRunning) return;
    loopRunning = true;
    try {
      while (playing) {
        if (resetting) await resetting;
        if (!playing) break;
        await doStep();
      }
    } finally {
      loopRunning = false;
    }
  }

  function play() {
    if (!session) return;
    playing = true;
    $("#play").classList.add("playing");
    loop();
  }

  function pause() {
    playing = false;
    $("#play").classList.remove("playing");
  }

  async function stepOnce() {
    pause();
    if (resetting) await resetting;
    if (stepInFlight) await stepInFlight;
    if (session) await doStep();
  }

  // ---------------------------------------------------------------------- CSV
  function csvColumns() {
    return {
      x1: $("#csv-x1").value,
      x2: $("#csv-x2").value,
      target: $("#csv-target").value,
    };
  }

  function useCsv() {
    state.dataset = "csv";
    state.csv = csvColumns();
    changed(true);
  }

  async function uploadCsv(file) {
    const limit = options.limits && options.limits.upload_bytes;
    if (limit && file.size > limit) {
      showError(`${file.name} is ${file.size} bytes; the Playground takes files up to ${limit} bytes.`);
      $("#csv-file").value = "";
      return;
    }
    pause();
    let answer;
    try {
      const text = await file.text();
      if (resetting) await resetting;
      if (!session) await ready;
      const send = () => api(
        `/api/upload?session=${encodeURIComponent(session)}&name=${encodeURIComponent(file.name)}`,
        text, { contentType: "text/csv" },
      );
      try {
        answer = await send();
      } catch (e) {
        if (e.status !== 404) throw e;
        // The session expired: open a new one, then upload again.
        session = null;
        adoptAnswer(await postReset(clone(accepted || state)), { adoptState: true });
        answer = await send();
      }
    } catch (e) {
      showError(e.message);
      return;
    } finally {
      $("#csv-file").value = "";
    }
    clearMessage();
    csvUpload = { columns: answer.columns, rows: answer.rows, name: file.name };
    for (const key of ["x1", "x2", "target"]) {
      fillSelect($("#csv-" + key), answer.columns);
      const guess = answer.guess && answer.guess[key];
      if (guess !== undefined && guess !== null) $("#csv-" + key).value = guess;
    }
    $("#csv-info").textContent = `${file.name}: ${answer.rows} rows, ${answer.columns.length} columns`;
    $("#csv-columns").hidden = false;
    builtDatasets = null;
    useCsv();
  }

  // ------------------------------------------------------------------- extras
  async function exportPython() {
    const button = $("#copy-python");
    if (!session) return;
    try {
      const answer = await api("/api/export", { session });
      const box = $("#python-box");
      const code = $("#python-code");
      code.value = answer.code;
      box.hidden = false;
      const link = $("#python-download");
      if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([answer.code], { type: "text/x-python" }));
      link.download = answer.filename || "playground_network.py";
      let copied = false;
      try {
        if (navigator.clipboard && navigator.clipboard.writeText) {
          await navigator.clipboard.writeText(answer.code);
          copied = true;
        }
      } catch (e) {
        copied = false; // no clipboard permission: the code is shown anyway
      }
      button.textContent = copied ? "Copied!" : "Copy as Python";
      if (copied) setTimeout(() => { button.textContent = "Copy as Python"; }, 1500);
    } catch (e) {
      showError(e.message);
    }
  }

  async function dropoutCurve() {
    const button = $("#dropout-curve");
    const status = $("#curve-status");
    if (!session || button.disabled) return;
    button.disabled = true;
    const count = options.choices.dropout.length * CURVE_SPLITS;
    const started = performance.now();
    const tick = () => {
      const s = Math.round((performance.now() - started) / 1000);
      status.textContent = `training ${count} networks… ${s ? `${s} s` : ""}`;
    };
    tick();
    const timer = setInterval(tick, 1000);
    try {
      const answer = await api("/api/curve", { session });
      const canvas = $("#curve");
      canvas.hidden = false;
      sizeCanvases();
      drawCurve(canvas, answer);
      lastCurve = answer;
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      status.textContent = `${answer.metric} against ${answer.param}, ${answer.epochs} epochs each (${secs} s)`;
    } catch (e) {
      status.textContent = "";
      showError(e.message);
    } finally {
      clearInterval(timer);
      button.disabled = false;
    }
  }

  function drawCurve(canvas, answer) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width; const h = canvas.height;
    const s = DPR;
    ctx.clearRect(0, 0, w, h);
    const m = { left: 44 * s, right: 10 * s, top: 10 * s, bottom: 34 * s };
    const xs = answer.values;
    const all = [...answer.train, ...answer.test].filter(Number.isFinite);
    if (!xs.length || !all.length) return;
    let lo = Math.min(...all); let hi = Math.max(...all);
    const padY = (hi - lo) * 0.1 || 0.05;
    lo -= padY; hi += padY;
    if (answer.metric === "accuracy") { lo = Math.max(0, lo); hi = Math.min(1, hi); }
    const xlo = Math.min(...xs); const xhi = Math.max(...xs);
    const X = (v) => m.left + ((v - xlo) / (xhi - xlo || 1)) * (w - m.left - m.right);
    const Y = (v) => h - m.bottom - ((v - lo) / (hi - lo || 1)) * (h - m.top - m.bottom);

    ctx.strokeStyle = "#999";
    ctx.lineWidth = s;
    ctx.beginPath();
    ctx.moveTo(m.left, m.top);
    ctx.lineTo(m.left, h - m.bottom);
    ctx.lineTo(w - m.right, h - m.bottom);
    ctx.stroke();
    ctx.fillStyle = "#555";
    ctx.font = `${10 * s}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const v of xs) {
      ctx.fillText(String(v), X(v), h - m.bottom + 4 * s);
    }
    ctx.fillText(answer.param, (m.left + w - m.right) / 2, h - m.bottom + 18 * s);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of niceTicks(lo, hi, 4)) {
      ctx.fillText(String(Math.round(v * 1000) / 1000), m.left - 4 * s, Y(v));
      ctx.beginPath();
      ctx.moveTo(m.left - 3 * s, Y(v));
      ctx.lineTo(m.left, Y(v));
      ctx.stroke();
    }
    ctx.save();
    ctx.translate(10 * s, (m.top + h - m.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(answer.metric, 0, 0);
    ctx.restore();

    for (const [values, colour, name] of [[answer.train, "#999999", "train"], [answer.test, "#000000", "validation"]]) {
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.lineWidth = 1.5 * s;
      ctx.beginPath();
      values.forEach((v, i) => (i ? ctx.lineTo(X(xs[i]), Y(v)) : ctx.moveTo(X(xs[i]), Y(v))));
      ctx.stroke();
      values.forEach((v, i) => {
        ctx.beginPath();
        ctx.arc(X(xs[i]), Y(v), 2.5 * s, 0, 2 * Math.PI);
        ctx.fill();
      });
      const ly = name === "train" ? m.top + 4 * s : m.top + 16 * s;
      ctx.fillRect(w - m.right - 84 * s, ly - s, 12 * s, 2 * s);
      ctx.textAlign = "left";
      ctx.fillText(name, w - m.right - 68 * s, ly);
    }
  }

  // --------------------------------------------------------------------- load
  async function start() {
    try {
      options = await api("/api/options", undefined, { method: "GET" });
    } catch (e) {
      showError(e.message);
      return;
    }
    setupControls();
    sizeCanvases();
    drawLegend();
    state = parseHash(options.defaults);
    syncControls();
    let f;
    try {
      f = await postReset(clone(state));
    } catch (e) {
      // A bad link: say what was wrong, then open the defaults.
      showError(e.message);
      state = clone(options.defaults);
      try {
        f = await postReset(clone(state));
      } catch (e2) {
        showError(e2.message);
        return;
      }
    }
    adoptAnswer(f, { adoptState: true });
    // Labels in a late web font move the neurons: lay the links out again.
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(layoutLinks);
    resolveReady();
  }

  // The tab is going away: the server may free its network at once (else it
  // expires after a while). Not part of the page's contract; best effort.
  window.addEventListener("pagehide", (event) => {
    if (!session || event.persisted || !navigator.sendBeacon) return;
    const body = new Blob([JSON.stringify({ session })], { type: "application/json" });
    navigator.sendBeacon("/api/close", body);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
