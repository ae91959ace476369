// streamlearn live dashboard: history from /models/{name}/monitors, new points by
// server-sent events from /monitors/stream, charts by uPlot. No build step.
"use strict";

(() => {
  const MAX_POINTS = 3600;        // an hour at one point per second
  const MONITORS_EVERY_MS = 5000; // data drift and states (computed by the API)
  const COLORS = ["#1565c0", "#8e24aa", "#00897b", "#ef6c00", "#6d4c41"];
  const DRIFT = "#c62828";
  const CHALLENGER_COLORS = ["#43a047", "#f9a825", "#d81b60", "#00acc1", "#7cb342", "#5d4037"];
  const DISABLED = "#9e9e9e";

  // Read by the browser test: counts that prove data arrives without a reload.
  const status = { loadedAt: Date.now(), messages: 0, models: {} };
  window.streamlearn = status;

  const $ = (sel, root = document) => root.querySelector(sel);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  const idKey = (id) => id.split("-").map(Number);
  const idAfter = (a, b) => {
    const [am, as] = idKey(a), [bm, bs] = idKey(b);
    return am > bm || (am === bm && as > bs);
  };
  const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

  function setBadge(node, label, state) {
    node.className = `badge ${state || "unknown"}`;
    node.textContent = `${label}: ${state || "unknown"}`;
  }

  // Vertical lines at drift detections, and dashed horizontal threshold lines.
  function markersPlugin(card, thresholds) {
    return {
      hooks: {
        draw: [
          (u) => {
            const { ctx } = u;
            const { left, top, width, height } = u.bbox;
            ctx.save();
            ctx.setLineDash([]);
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.strokeStyle = DRIFT;
            ctx.fillStyle = DRIFT;
            ctx.font = `${11 * devicePixelRatio}px sans-serif`;
            const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
            let drawn = 0;
            for (const d of card.detections) {
              if (d.time < xmin || d.time > xmax) continue;
              drawn += 1;
              const x = Math.round(u.valToPos(d.time, "x", true));
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
              const row = 1 + ((drawn - 1) % 3); // stagger labels of close detections
              ctx.fillText(`drift @${d.n}`, x + 4 * devicePixelRatio, top + 12 * row * devicePixelRatio);
            }
            u.root.dataset.markers = String(drawn); // read by the browser test
            if (thresholds) {
              ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
              ctx.lineWidth = 1 * devicePixelRatio;
              for (const [value, color] of thresholds()) {
                if (value === null || value === undefined) continue;
                const y = Math.round(u.valToPos(value, "y", true));
                if (y < top || y > top + height) continue;
                ctx.strokeStyle = color;
                ctx.beginPath();
                ctx.moveTo(left, y);
                ctx.lineTo(left + width, y);
                ctx.stroke();
              }
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  class ModelCard {
    constructor(summary, root) {
      this.name = summary.name;
      this.task = summary.task;
      this.ids = [];
      this.points = [];
      this.detections = [];
      this.errorState = null;
      this.versionsLoadedFor = null;
      this.dirty = false;
      const errorLabel = this.task === "classification" ? "error rate" : "mean absolute error";

      this.node = el("section", { class: "model", "data-model": this.name, "data-points": "0",
                                  "data-detections": "0" });
      this.head = el("div", { class: "model-head" });
      this.facts = el("span", { class: "facts" });
      this.badges = {
        overall: el("span", { class: "badge unknown" }),
        drift: el("span", { class: "badge unknown", "data-monitor": "concept_drift" }),
        error: el("span", { class: "badge unknown", "data-monitor": "error_rate" }),
        data: el("span", { class: "badge unknown", "data-monitor": "data_drift" }),
        trainer: el("span", { class: "badge unknown", "data-trainer": "unknown", text: "trainer: …" }),
      };
      this.head.append(el("h2", { text: this.name }), this.badges.overall, this.badges.drift,
                       this.badges.error, this.badges.data, this.badges.trainer, this.facts);
      this.alerts = el("ul", { class: "alerts" });

      const chartBox = (title) => {
        const plot = el("div", { class: "plot" });
        const titleNode = el("h3", { text: title });
        return { box: el("div", { class: "chart" }, titleNode, plot), plot, titleNode };
      };
      this.metricBox = chartBox("rolling metric");
      this.errorBox = chartBox(`${errorLabel} per window`);
      this.rateBox = chartBox("events per second and consumer lag");
      const charts = el("div", { class: "charts" }, this.metricBox.box, this.errorBox.box, this.rateBox.box);

      this.versionsBody = el("tbody");
      this.driftBody = el("tbody");
      this.driftCaption = el("h3", { text: "data drift (PSI of live requests vs training)" });
      const versions = el("div", {},
        el("h3", { text: "versions" }),
        el("div", { class: "scroll" }, el("table", { class: "versions" },
          el("thead", {}, el("tr", {}, ...["version", "parent", "created", "learned", "metrics", ""]
            .map((t) => el("th", { text: t })))),
          this.versionsBody)));
      const drift = el("div", {},
        this.driftCaption,
        el("div", { class: "scroll" }, el("table", { class: "features" },
          el("thead", {}, el("tr", {}, ...["feature", "kind", "PSI", ""].map((t) => el("th", { text: t })))),
          this.driftBody)));
      // Champion and challengers (shown once the model has challengers).
      this.boardHead = el("thead");
      this.boardBody = el("tbody");
      this.board = el("div", { class: "leaderboard", hidden: "" },
        el("h3", { text: "leaderboard: champion and challengers on the same events" }),
        el("div", { class: "scroll" }, el("table", { class: "leaderboard" }, this.boardHead, this.boardBody)));
      this.node.append(this.head, this.alerts, charts, this.board,
                       el("div", { class: "tables" }, versions, drift));
      root.append(this.node);
      this.charts = null;
    }

    // -- data ---------------------------------------------------------------------

    merge(ids, points) {
      const byId = new Map(this.ids.map((id, i) => [id, this.points[i]]));
      ids.forEach((id, i) => byId.set(id, points[i]));
      const sorted = [...byId.keys()].sort((a, b) => (idAfter(a, b) ? 1 : idAfter(b, a) ? -1 : 0));
      this.ids = sorted.slice(-MAX_POINTS);
      this.points = this.ids.map((id) => byId.get(id));
      for (const p of points) this.addDetections(p.detections || []);
      this.dirty = true;
    }

    addPoint(id, point) {
      const last = this.ids[this.ids.length - 1];
      if (last && !idAfter(id, last)) return;
      this.ids.push(id);
      this.points.push(point);
      if (this.ids.length > MAX_POINTS) {
        this.ids.shift();
        this.points.shift();
      }
      this.addDetections(point.detections || []);
      this.applyPointState(point);
      this.dirty = true;
      if (point.version !== null && point.version !== this.versionsLoadedFor) this.loadVersions();
    }

    addDetections(list) {
      for (const d of list) {
        if (!this.detections.some((e) => e.n === d.n)) this.detections.push(d);
      }
      this.detections.sort((a, b) => a.n - b.n);
    }

    applyPointState(point) {
      setBadge(this.badges.drift, "concept drift", point.drift_state);
      setBadge(this.badges.error, this.task === "classification" ? "error rate" : "abs. error",
               point.error_rate && point.error_rate.state);
      const lag = sum(point.lag);
      const sv = point.served;
      const served = sv ? ` · served ${sv.metric} ${fmt(sv.overall)} on ${sv.n.toLocaleString()} labelled, ` +
        `label delay p50 ${fmt(sv.label_delay_seconds.p50, 1)} s` : "";
      this.facts.textContent =
        `v${point.version ?? "–"} · ${point.n_learned.toLocaleString()} learned · ` +
        `${fmt(point.events_per_s, 1)} events/s · lag ${lag.toLocaleString()}${served}`;
    }

    applyReport(report) {
      setBadge(this.badges.overall, "overall", report.state);
      if (report.concept_drift) setBadge(this.badges.drift, "concept drift", report.concept_drift.state);
      if (report.error_rate) {
        this.errorState = report.error_rate;
        setBadge(this.badges.error, this.task === "classification" ? "error rate" : "abs. error",
                 report.error_rate.state);
      }
      if (report.concept_drift) this.addDetections(report.concept_drift.detections || []);
      setBadge(this.badges.data, "data drift", report.data_drift.state);
      this.alerts.replaceChildren(...report.alerts.map((text) =>
        el("li", { class: text.startsWith("warning") ? "warning" : "alert", text })));
      const dd = report.data_drift;
      this.driftCaption.textContent =
        `data drift: PSI of the last ${dd.samples} requests vs training of v${dd.reference_version ?? "–"} ` +
        `(flag at ${dd.threshold}, scored from ${dd.min_samples} requests)`;
      this.driftBody.replaceChildren(...dd.features.map((f) =>
        el("tr", { "data-feature": f.feature },
          el("td", { text: f.feature }), el("td", { text: f.kind }),
          el("td", { text: fmt(f.score), class: f.flagged ? "flagged" : "" }),
          el("td", { text: f.flagged ? "drift" : "", class: f.flagged ? "flagged" : "" }))));
      this.dirty = true;
    }

    async loadHistory() {
      const report = await getJSON(`models/${encodeURIComponent(this.name)}/monitors?history=${MAX_POINTS}`);
      this.merge(report.history_ids, report.history);
      if (report.history.length) this.applyPointState(report.history[report.history.length - 1]);
      this.applyReport(report);
      const last = report.history[report.history.length - 1];
      if (last && last.version !== null) this.loadVersions();
    }

    async refreshReport() {
      this.applyReport(await getJSON(`models/${encodeURIComponent(this.name)}/monitors?history=0`));
      this.refreshTrainer().catch(console.error);
      this.refreshLeaderboard().catch(console.error);
    }

    async refreshLeaderboard() {
      let board;
      try {
        board = await getJSON(`models/${encodeURIComponent(this.name)}/leaderboard`);
      } catch (err) {
        return; // no version yet
      }
      if (board.rows.length < 2) return; // no challenger: nothing to compare
      this.board.hidden = false;
      const main = board.main_metric;
      // Delayed labels: the served column, on the requests that were served and labelled.
      const served = board.rows.some((r) => r.served);
      this.boardHead.replaceChildren(el("tr", {}, ...["", "pipeline", "metric", "rolling", "learned",
        "vs champion", "p", "", ...(served ? ["served", "vs served", "joined", "served p"] : [])]
        .map((t) => el("th", { text: t }))));
      const signed = (v) => (v === null || v === undefined ? "–" : (v >= 0 ? "+" : "") + fmt(v, 4));
      const verdictOf = (better) => (better === true ? "better" : better === false ? "worse" : "");
      const servedCells = (sv) => !sv ? [] : [
        el("td", { "data-served": fmt(sv.value, 4), text: `${sv.metric} ${fmt(sv.value)}` }),
        el("td", { text: signed(sv.difference) }),
        el("td", { "data-joined": String(sv.n), text: sv.n.toLocaleString() }),
        el("td", { text: (sv.paired && sv.n ? Number(sv.paired.p_value).toPrecision(2) : "–") +
                         (sv.better === null || sv.better === undefined ? "" : ` ${verdictOf(sv.better)}`) }),
      ];
      this.boardBody.replaceChildren(...board.rows.map((r) => {
        const verdict = r.error ? `disabled: ${r.error}` : verdictOf(r.better);
        return el("tr", { "data-row": r.name, class: r.role + (r.error ? " disabled" : "") },
          el("td", { text: r.role }), el("td", { text: r.name }),
          el("td", { text: `${main} ${fmt(r.metrics[main])}` }), el("td", { text: fmt(r.rolling_metrics[main]) }),
          el("td", { text: r.n_learned.toLocaleString() }),
          el("td", { text: signed(r.main_difference) }),
          el("td", { text: r.paired ? Number(r.paired.p_value).toPrecision(2) : "–" }),
          el("td", { text: verdict }),
          ...(served ? (r.served ? servedCells(r.served) : [el("td", { text: "–" }), el("td"), el("td"), el("td")]) : []));
      }));
    }

    // Who trains the model (its lease holder), flagged when nobody does.
    async refreshTrainer() {
      const badge = this.badges.trainer;
      let detail;
      try {
        detail = await getJSON(`models/${encodeURIComponent(this.name)}`);
      } catch (err) {
        return; // no version served yet (503): the badge keeps what it showed
      }
      const t = detail.trainer;
      if (t) {
        badge.className = "badge ok";
        badge.dataset.trainer = `${t.host}:${t.pid}`;
        badge.textContent = `trained by ${t.host} pid ${t.pid} · epoch ${t.epoch}` +
          (t.lag === null || t.lag === undefined ? "" : ` · lag ${t.lag.toLocaleString()}`);
        badge.title = `owner since ${t.since}`;
      } else {
        badge.className = "badge alert";
        badge.dataset.trainer = "none";
        badge.textContent = "nobody trains it";
        badge.title = "no trainer holds this model's lease: it does not learn";
      }
    }

    async loadVersions() {
      const now = Date.now();
      if (this.versionsLoading || now - (this.versionsAt || 0) < 2000) return;
      this.versionsLoading = true;
      try {
        const list = await getJSON(`models/${encodeURIComponent(this.name)}/versions`);
        this.versionsAt = now;
        this.versionsLoadedFor = list.length ? list[0].version : null;
        this.versionsBody.replaceChildren(...list.map((v) =>
          el("tr", { class: v.served ? "served" : "" },
            el("td", { text: `v${v.version}` }),
            el("td", { text: v.parent === null ? "–" : `v${v.parent}` }),
            el("td", { text: new Date(v.created_at).toLocaleTimeString() }),
            el("td", { text: v.n_learned.toLocaleString() }),
            el("td", { text: this.metricsText(v) }),
            el("td", { text: [v.served ? "served" : "", v.pinned ? "pinned" : "", v.tag || ""]
              .filter(Boolean).join(" ") }))));
      } finally {
        this.versionsLoading = false;
      }
    }

    metricsText(v) {
      const text = Object.entries(v.metrics).map(([k, x]) => `${k} ${fmt(x)}`).join(", ");
      const served = this.servedNow();
      const mine = served && served.by_version[String(v.version)];
      return mine ? `${text}; served ${served.metric} ${fmt(mine.value)} (${mine.n} labelled)` : text;
    }

    servedNow() {
      for (let i = this.points.length - 1; i >= 0; i--) if (this.points[i].served) return this.points[i].served;
      return null;
    }

    // -- charts -------------------------------------------------------------------

    series() {
      const pts = this.points;
      const t = pts.map((p) => p.time);
      const metric = pts.length ? Object.keys(pts[pts.length - 1].rolling || {})[0] : null;
      const windows = pts.length ? Object.keys(pts[pts.length - 1].error_rate.windows || {}) : [];
      const served = this.servedNow();
      const metricData = [t, pts.map((p) => (metric ? p.rolling[metric] : null)),
                          pts.map((p) => (metric ? p.metrics[metric] : null))];
      // Delayed labels: how good the predictions actually served were, on the same chart.
      if (served) metricData.push(pts.map((p) => (p.served ? p.served.overall : null)));
      // Challengers: each one's rolling metric beside the champion's (those of the newest point;
      // a disabled one stays in the legend, marked, its line grey and dashed up to where it stopped).
      const last = pts.length ? pts[pts.length - 1].challengers || {} : {};
      const challengers = Object.keys(last).sort().map((name) => ({ name, disabled: !!last[name].disabled }));
      for (const c of challengers) {
        metricData.push(pts.map((p) => {
          const mine = p.challengers && p.challengers[c.name];
          return mine && metric && !mine.disabled ? mine.rolling[metric] ?? null : null;
        }));
      }
      return {
        metric,
        windows,
        servedMetric: served ? served.metric : null,
        challengers,
        metricData,
        errorData: [t, ...windows.map((w) => pts.map((p) => p.error_rate.windows[w] ?? null)),
                    pts.map((p) => p.error_rate.cumulative)],
        rateData: [t, pts.map((p) => p.events_per_s), pts.map((p) => sum(p.lag))],
      };
    }

    makeCharts(s) {
      const width = Math.max(this.metricBox.plot.clientWidth, 300);
      // The time axis spans the points and every drift marker, and a minute around a lone point.
      const xRange = (u, min, max) => {
        for (const d of this.detections) {
          min = Math.min(min, d.time);
          max = Math.max(max, d.time);
        }
        return min === max ? [min - 30, max + 30] : [min, max];
      };
      const x = { time: true, range: xRange };
      const base = { width, height: 220, scales: { x }, legend: { live: false } };
      const line = (label, i, extra = {}) => ({ label, stroke: COLORS[i % COLORS.length], width: 2,
                                                spanGaps: true, ...extra });
      this.metricBox.titleNode.textContent = (s.servedMetric
        ? `${s.metric} (rolling, cumulative, and on served predictions)`
        : `${s.metric} (rolling and cumulative)`) +
        (s.challengers.length ? ` · challengers' rolling ${s.metric}` : "");
      const challengerLine = (c, i) => (c.disabled
        ? { label: `challenger ${c.name} (disabled)`, stroke: DISABLED, width: 1, dash: [2, 4], spanGaps: false }
        : { label: `challenger ${c.name}`, stroke: CHALLENGER_COLORS[i % CHALLENGER_COLORS.length], width: 1.5,
            spanGaps: true });
      const metricChart = new uPlot({
        ...base,
        series: [{}, line(`rolling ${s.metric} (champion)`, 0), line(`cumulative ${s.metric}`, 1, { dash: [5, 5] }),
                 ...(s.servedMetric ? [line(`served ${s.servedMetric}`, 4)] : []),
                 ...s.challengers.map(challengerLine)],
        plugins: [markersPlugin(this)],
      }, s.metricData, this.metricBox.plot);
      // Read by the browser test: the metric chart's lines, as its legend names them.
      this.metricBox.plot.dataset.series = JSON.stringify(metricChart.series.slice(1).map((x) => x.label));
      const errorChart = new uPlot({
        ...base,
        series: [{}, ...s.windows.map((w, i) => line(`last ${w}`, i + 2)),
                 line("cumulative", 1, { dash: [5, 5] })],
        plugins: [markersPlugin(this, () => [
          [this.errorState && this.errorState.warning, "#c77c02"],
          [this.errorState && this.errorState.alert, "#c62828"],
        ])],
      }, s.errorData, this.errorBox.plot);
      const rateChart = new uPlot({
        ...base,
        scales: { x, lag: {} },
        series: [{}, line("events/s", 0), line("lag", 3, { scale: "lag" })],
        axes: [{}, { label: "events/s" }, { side: 1, scale: "lag", label: "lag", grid: { show: false } }],
        plugins: [markersPlugin(this)],
      }, s.rateData, this.rateBox.plot);
      this.charts = { metric: metricChart, error: errorChart, rate: rateChart, key: chartKey(s) };
    }

    render() {
      if (!this.dirty) return;
      this.dirty = false;
      this.node.dataset.points = String(this.points.length);
      this.node.dataset.detections = String(this.detections.length);
      if (this.points.length) {
        const s = this.series();
        if (!this.charts || this.charts.key !== chartKey(s)) {
          if (this.charts) for (const k of ["metric", "error", "rate"]) this.charts[k].destroy();
          this.makeCharts(s);
        } else {
          this.charts.metric.setData(s.metricData);
          this.charts.error.setData(s.errorData);
          this.charts.rate.setData(s.rateData);
        }
      }
      const served = this.servedNow();
      status.models[this.name] = { points: this.points.length, detections: this.detections.length,
                                   served: served ? served.overall : null,
                                   metricSeries: this.charts ? this.charts.metric.series.slice(1).map((x) => x.label) : [] };
    }

    resize() {
      if (!this.charts) return;
      const width = Math.max(this.metricBox.plot.clientWidth, 300);
      for (const k of ["metric", "error", "rate"]) this.charts[k].setSize({ width, height: 220 });
    }
  }

  // Charts are rebuilt when their series change: new error windows, served scores appearing, a
  // challenger added, dropped or disabled.
  const chartKey = (s) => `${s.windows.join()}|${s.servedMetric || ""}|` +
    s.challengers.map((c) => `${c.name}${c.disabled ? "!" : ""}`).join();

  const cards = new Map();
  const connection = $("#connection");
  const updated = $("#updated");

  function connect() {
    const source = new EventSource("monitors/stream");
    source.onopen = () => {
      connection.className = "badge ok";
      connection.textContent = "live";
      // Points published while disconnected: fetch the history again (merged by stream id).
      for (const card of cards.values()) card.loadHistory().catch(console.error);
    };
    source.onerror = () => {
      connection.className = "badge warning";
      connection.textContent = "reconnecting";
    };
    source.addEventListener("point", (event) => {
      const msg = JSON.parse(event.data);
      const card = cards.get(msg.model);
      if (!card) return;
      status.messages += 1;
      card.addPoint(msg.id, msg.point);
      updated.textContent = `last point ${new Date(msg.point.time * 1000).toLocaleTimeString()}`;
    });
  }

  async function start() {
    const models = await getJSON("models");
    const root = $("#models");
    root.replaceChildren();
    if (!models.length) root.append(el("p", { class: "muted", text: "No model is configured." }));
    for (const m of models) cards.set(m.name, new ModelCard(m, root));
    connect();
    await Promise.all([...cards.values()].map((c) => c.loadHistory().catch(console.error)));
    for (const card of cards.values()) card.refreshTrainer().catch(console.error);
    for (const card of cards.values()) card.refreshLeaderboard().catch(console.error);
    const frame = () => {
      for (const card of cards.values()) card.render();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    setInterval(() => {
      for (const card of cards.values()) card.refreshReport().catch(console.error);
    }, MONITORS_EVERY_MS);
    window.addEventListener("resize", () => { for (const card of cards.values()) card.resize(); });
  }

  start().catch((err) => {
    $("#models").replaceChildren(el("p", { class: "alert", text: `Cannot load the dashboard: ${err}` }));
  });
})();
