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
    // Straight lines between the points measured: a smoothed curve invents values between buckets.
    return Object.assign({ name: name, type: "line", showSymbol: false, data: data }, extra || {});
  }

  var CHARTS = {
    // Counts and sums per bucket are bars; the part (errors, voucher payments) drawn over the whole.
    calls: function (d) {
      return [series(d.names.calls, d.series.calls, { type: "bar" }),
              series(d.names.errors, d.series.errors, { type: "bar", barGap: "-100%", color: "#c0262d" })];
    },
    tokens: function (d) {
      return [series(d.names.prompt, d.series.prompt_tokens, { type: "bar", stack: "t" }),
              series(d.names.completion, d.series.completion_tokens, { type: "bar", stack: "t" })];
    },
    spend: function (d) {
      return [series(d.names.spend, d.series.spend, { type: "bar" }),
              series(d.names.voucher, d.series.voucher, { type: "bar", barGap: "-100%" })];
    },
    latency: function (d) {
      // Sparse by nature (no calls, no latency): show the points, or a lone hour would be invisible.
      return [series(d.names.p50, d.series.latency_p50, { connectNulls: true, showSymbol: true }),
              series(d.names.p95, d.series.latency_p95, { connectNulls: true, showSymbol: true })];
    },
  };

  CHARTS.pools = function (d) {
    // One line a pool; a gap where the pool was not read or its cluster did not answer.
    return Object.keys(d.series.pools).map(function (name) {
      return series(name, d.series.pools[name], { connectNulls: false, showSymbol: true, symbolSize: 3 });
    });
  };

  var INTEGERS = { calls: true, tokens: true };
  var PERCENT = { pools: true };  // a share of a pool in use: the axis runs to 100 whatever was seen

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
        // Calls and tokens are whole numbers: no 0.2 calls on an empty day's axis.
        yAxis: { type: "value", minInterval: INTEGERS[el.dataset.chart] ? 1 : 0, max: PERCENT[el.dataset.chart] ? 100 : null },
        series: CHARTS[el.dataset.chart](data),
      });
    });
  }

  // A generated answer shown with its explicit AIGC notice (unless its text carries it already) and
  // buttons that export it, with its label, as a file (/v1/aigc/export checks the label first).
  function labeled(prefix, notice, text, label, body, key) {
    var shown = document.getElementById(prefix + "-notice");
    var bar = document.getElementById(prefix + "-export");
    shown.hidden = !label || text.indexOf(notice) !== -1;
    bar.hidden = !label;
    bar.querySelectorAll("button").forEach(function (button) {
      button.onclick = async function () {
        var format = button.dataset.format;
        try {
          var response = await fetch("/v1/aigc/export?format=" + format, {
            method: "POST",
            headers: {
              "Content-Type": "application/json",
              "Authorization": "Bearer " + key,
              "Accept-Language": document.documentElement.lang,
            },
            body: JSON.stringify(Object.assign({ aigc: label }, body)),
          });
          if (!response.ok) {
            var problem = await response.json().catch(function () { return {}; });
            throw new Error((problem.error && problem.error.message) || response.statusText);
          }
          var link = document.createElement("a");
          link.href = URL.createObjectURL(await response.blob());
          link.download = "answer." + format;
          document.body.appendChild(link);
          link.click();
          link.remove();
        } catch (error) {
          bar.querySelector("span").textContent = error.message;
        }
      };
    });
  }

  function unlabeled(prefix) {
    document.getElementById(prefix + "-notice").hidden = true;
    document.getElementById(prefix + "-export").hidden = true;
  }

  function playground(form) {
    var out = document.getElementById("pg-answer");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      out.classList.remove("failed");
      out.textContent = form.dataset.waiting;
      unlabeled("pg");
      var label = null;
      var model = document.getElementById("pg-model").value;
      var steps = document.getElementById("pg-steps");
      steps.textContent = "";
      steps.hidden = true;
      var body = {
        model: model,
        messages: [{ role: "user", content: document.getElementById("pg-message").value }],
        stream: true,
      };
      // An agent's stream carries its steps (model calls, tools) as they happen: shown above the answer.
      if (model.startsWith("agent/")) body.stream_options = { include_steps: true };
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
            if (chunk.aigc) label = chunk.aigc;
            var step = chunk.dizuo && chunk.dizuo.step;
            if (step) {
              var item = document.createElement("li");
              item.textContent = step.kind + " " + step.name + (step.arguments ? " " + step.arguments : "") +
                " · " + step.ms + " ms" + (step.ok ? "" : " ✗");
              steps.appendChild(item);
              steps.hidden = false;
            }
            var delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) out.textContent += delta.content;
          });
        }
        var question = document.getElementById("pg-message").value;
        labeled("pg", form.dataset.notice, out.textContent, label,
          { content: out.textContent, question: question }, document.getElementById("pg-key").value.trim());
      } catch (error) {
        out.classList.add("failed");
        out.textContent = error.message;
      }
    });
  }

  // The real /v1 with a pasted key: errors come back in the OpenAI envelope, in the page's language.
  async function callApi(path, key, options) {
    var response = await fetch(path, Object.assign({}, options, {
      headers: Object.assign({
        "Authorization": "Bearer " + key,
        "Accept-Language": document.documentElement.lang,
      }, options.headers || {}),
    }));
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  function knowledgeTools(section) {
    var key = function () { return document.getElementById("kb-key").value.trim(); };
    var base = function () {
      return "/v1/knowledge-bases/" + encodeURIComponent(document.getElementById("kb-name").value);
    };
    var result = document.getElementById("kb-upload-result");
    document.getElementById("kb-upload").addEventListener("submit", async function (event) {
      event.preventDefault();
      var file = document.getElementById("kb-file").files[0];
      result.classList.remove("error");
      result.textContent = section.dataset.waiting;
      try {
        var added = await callApi(base() + "/documents?filename=" + encodeURIComponent(file.name), key(), {
          method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" },
        });
        result.textContent = section.dataset.uploaded
          .replace("{source}", added.source).replace("{chunks}", added.chunks);
        setTimeout(function () { window.location.reload(); }, 1500);
      } catch (error) {
        result.classList.add("error");
        result.textContent = error.message;
      }
    });
    var answer = document.getElementById("kb-answer");
    var citations = document.getElementById("kb-citations");
    document.getElementById("kb-ask").addEventListener("submit", async function (event) {
      event.preventDefault();
      answer.classList.remove("failed");
      answer.textContent = section.dataset.waiting;
      citations.replaceChildren();
      unlabeled("kb");
      try {
        var doc = await callApi(base() + "/ask", key(), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            question: document.getElementById("kb-question").value,
            model: document.getElementById("kb-model").value || null,
          }),
        });
        answer.textContent = doc.answer;
        var question = document.getElementById("kb-question").value;
        labeled("kb", section.dataset.notice, doc.answer, doc.aigc || null,
          { answer: doc.answer, question: question }, key());
        doc.citations.forEach(function (c) {
          var item = document.createElement("li");
          item.textContent = c.source + " · " + c.locator + " — " + c.text;
          citations.appendChild(item);
        });
      } catch (error) {
        answer.classList.add("failed");
        answer.textContent = error.message;
      }
    });
  }

  function start() {
    var form = document.getElementById("playground");
    if (form) playground(form);
    var tools = document.getElementById("kb-tools");
    if (tools) knowledgeTools(tools);
    if (window.htmx) {
      htmx.onLoad(drawCharts);
    } else {
      drawCharts(document);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
