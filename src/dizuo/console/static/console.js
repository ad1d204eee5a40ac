// dizuo console: charts (ECharts) drawn from JSON the page carries, and the playground's stream.
"use strict";

(function () {
  if (window.htmx) {
    // Inline form errors come back as 400 pages: swap them in like any other answer.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "4..", swap: true, error: false },
      { code: "...", swap: false, error: true },
    ];
  }

  function series(name, data, extra) {
    return Object.assign({ name: name, type: "line", smooth: true, showSymbol: false, data: data }, extra || {});
  }

  var CHARTS = {
    calls: function (d) {
      return [series(d.names.calls, d.series.calls, { areaStyle: { opacity: 0.15 } }),
              series(d.names.errors, d.series.errors, { color: "#c0262d" })];
    },
    tokens: function (d) {
      return [series(d.names.prompt, d.series.prompt_tokens, { type: "bar", stack: "t" }),
              series(d.names.completion, d.series.completion_tokens, { type: "bar", stack: "t" })];
    },
    spend: function (d) {
      return [series(d.names.spend, d.series.spend), series(d.names.voucher, d.series.voucher)];
    },
    latency: function (d) {
      // Sparse by nature (no calls, no latency): show the points, or a lone hour would be invisible.
      return [series(d.names.p50, d.series.latency_p50, { connectNulls: true, showSymbol: true }),
              series(d.names.p95, d.series.latency_p95, { connectNulls: true, showSymbol: true })];
    },
  };

  function drawCharts(root) {
    if (!window.echarts) return;
    var source = root.querySelector ? root.querySelector("script.chart-data") : null;
    if (!source) return;
    var data = JSON.parse(source.textContent);
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var old = echarts.getInstanceByDom(el);
      if (old) old.dispose();
      var chart = echarts.init(el, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 32, bottom: 28 },
        xAxis: { type: "category", data: data.labels },
        yAxis: { type: "value" },
        series: CHARTS[el.dataset.chart](data),
      });
    });
  }

  function playground(form) {
    var out = document.getElementById("pg-answer");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      out.classList.remove("failed");
      out.textContent = form.dataset.waiting;
      var body = {
        model: document.getElementById("pg-model").value,
        messages: [{ role: "user", content: document.getElementById("pg-message").value }],
        stream: true,
      };
      try {
        var response = await fetch(form.dataset.endpoint, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + document.getElementById("pg-key").value.trim(),
            "Accept-Language": document.documentElement.lang,
          },
          body: JSON.stringify(body),
        });
        if (!response.ok) {
          var problem = await response.json().catch(function () { return {}; });
          throw new Error((problem.error && problem.error.message) || response.statusText);
        }
        out.textContent = "";
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        for (;;) {
          var part = await reader.read();
          if (part.done) break;
          buffer += decoder.decode(part.value, { stream: true });
          var events = buffer.split("\n\n");
          buffer = events.pop();
          events.forEach(function (event) {
            var line = event.split("\n").find(function (l) { return l.startsWith("data: "); });
            if (!line || line === "data: [DONE]") return;
            var chunk = JSON.parse(line.slice(6));
            if (chunk.error) throw new Error(chunk.error.message);
            var delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) out.textContent += delta.content;
          });
        }
      } catch (error) {
        out.classList.add("failed");
        out.textContent = error.message;
      }
    });
  }

  function start() {
    var form = document.getElementById("playground");
    if (form) playground(form);
    if (window.htmx) {
      htmx.onLoad(drawCharts);
    } else {
      drawCharts(document);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
