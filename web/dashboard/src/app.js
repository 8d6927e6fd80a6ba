// The orderflow analytics dashboard: fetches the JSON endpoints (/api/...) and draws the cards,
// tables and ECharts charts. Chinese by default, English switchable; money in fen shown as ¥
// with two decimals; times in the shop's display zone. Live: reloads when the server says the
// store changed (server-sent events), and every 10 s in any case.
"use strict";

const I18N = {
  zh: {
    title: "订单分析看板", range: "时间范围", last7: "近 7 天", last30: "近 30 天", last90: "近 90 天",
    channel: "渠道", allChannels: "全部渠道", live: "实时", rangeLine: "统计区间", zone: "时区",
    trend: "每日有效订单与成交额", funnel: "订单生命周期漏斗", durations: "各环节耗时（P50 / P90）",
    stuck: "当前卡单", rfm: "客户分层（RFM）", export: "导出客户 CSV", exceptions: "异常订单（按类型）",
    openExceptions: "未结异常（按责任方 / 级别，SLA）", returns: "退货热点商品", sync: "状态同步延迟（按渠道）",
    forecast: "销量预测（热销 SKU）", inventory: "库存周转天数",
    footer: "数据来自 orderflow 事件日志；每张卡片都有对应的 JSON 接口（/api/...）。",
    langButton: "English", updated: "更新于",
    k_valid_orders: "有效订单数", k_daily_valid_orders: "日均有效订单数", k_gmv: "成交额（GMV）", k_aov: "客单价",
    k_return_rate: "退货率", k_repurchase_rate: "复购率", k_new_customers: "新增客户数", k_payment_conversion: "支付转化率",
    k_orders: "下单数", k_cancelled: "取消订单数",
    vsPrevious: "较上期", validOrders: "有效订单", gmv: "成交额",
    placed: "下单", paid: "支付", approved: "审核", routed: "分仓", shipped: "发货", delivered: "签收", completed: "完成",
    stage: "环节", orders: "订单数", total: "全部",
    waiting: "已等待", order: "订单", since: "进入时间", noStuck: "没有超过阈值的卡单",
    kind: "异常类型", raised: "发生", share: "占比", resolved: "已处理", avgHandling: "平均处理时长", open: "未结",
    owner: "责任方", level: "级别", overdue: "超 SLA", oldest: "最长停留",
    sku: "SKU", category: "品类", shippedOrders: "发货订单", returnedOrders: "退货订单", returnRate: "退货率",
    inbound: "入站：事实→状态 P50 / P90", outbound: "出站：事实→渠道确认 P50 / P90", samples: "样本",
    noSync: "暂无数据：入站延迟来自 order-state 快照，出站延迟来自 orderflow-sync 的渠道确认。",
    onHand: "在库", sold28: "近 28 天销量", cover: "周转天数",
    history: "历史销量", forecastLine: "预测", band: "80% 区间",
    backtest: "回测（最近 14 天）MAPE：模型 {model}，季节性朴素基线 {naive}（{n} 个 SKU）",
    customers: "客户数", crossChannel: "跨渠道识别客户 {n} 人（按手机号哈希关联）",
    noCharts: "图表库未安装（运行 scripts/web.sh install），卡片与表格仍可用。",
    loadError: "数据加载失败：",
    seg_important_value: "重要价值客户", seg_important_develop: "重要发展客户", seg_important_keep: "重要保持客户",
    seg_important_retain: "重要挽留客户", seg_general_value: "一般价值客户", seg_general_develop: "一般发展客户",
    seg_general_keep: "一般保持客户", seg_general_retain: "一般挽留客户",
    ch_tmall: "天猫", ch_jd: "京东", ch_douyin: "抖音", ch_web: "官网商城", ch_miniapp: "小程序", ch_store: "线下门店", ch_all: "全部",
    ex_payment_timeout: "支付超时", ex_invalid_address: "地址无效", ex_invalid_phone: "电话错误",
    ex_blacklisted_phone: "黑名单手机号", ex_out_of_stock_at_review: "审核时缺货", ex_suspected_fraud: "疑似刷单",
    ex_invoice_invalid: "发票不合规", ex_duplicate_order: "重复订单", ex_amount_mismatch: "金额不符",
    ex_duplicate_payment: "重复支付", ex_illegal_transition: "非法状态流转", ex_sync_failure: "同步失败",
    ex_review_overdue: "审核超时",
    ow_customer_service: "客服", ow_warehouse: "仓储", ow_risk: "风控", ow_finance: "财务", ow_operations: "运营",
  },
  en: {
    title: "Order analytics", range: "Range", last7: "Last 7 days", last30: "Last 30 days", last90: "Last 90 days",
    channel: "Channel", allChannels: "All channels", live: "Live", rangeLine: "Period", zone: "time zone",
    trend: "Daily valid orders and GMV", funnel: "Order lifecycle funnel", durations: "Stage durations (P50 / P90)",
    stuck: "Stuck now", rfm: "Customer segments (RFM)", export: "Export customers (CSV)", exceptions: "Exceptions by kind",
    openExceptions: "Open exceptions by owner / level, against SLA", returns: "Most returned SKUs", sync: "Status-sync latency by channel",
    forecast: "Sales forecast (best sellers)", inventory: "Days of stock cover",
    footer: "From the orderflow event log; every card has its JSON endpoint (/api/...).",
    langButton: "中文", updated: "updated",
    k_valid_orders: "Valid orders", k_daily_valid_orders: "Valid orders per day", k_gmv: "GMV", k_aov: "Average order value",
    k_return_rate: "Return rate", k_repurchase_rate: "Repurchase rate", k_new_customers: "New customers", k_payment_conversion: "Payment conversion",
    k_orders: "Orders placed", k_cancelled: "Cancelled",
    vsPrevious: "vs previous", validOrders: "Valid orders", gmv: "GMV",
    placed: "Placed", paid: "Paid", approved: "Approved", routed: "Routed", shipped: "Shipped", delivered: "Delivered", completed: "Completed",
    stage: "Stage", orders: "Orders", total: "All",
    waiting: "Waiting", order: "Order", since: "Since", noStuck: "No order waits beyond the threshold",
    kind: "Kind", raised: "Raised", share: "Share", resolved: "Resolved", avgHandling: "Avg handling", open: "Open",
    owner: "Owner", level: "Level", overdue: "Over SLA", oldest: "Longest at level",
    sku: "SKU", category: "Category", shippedOrders: "Shipped", returnedOrders: "Returned", returnRate: "Return rate",
    inbound: "Inbound: fact→state P50 / P90", outbound: "Outbound: fact→channel ack P50 / P90", samples: "n",
    noSync: "No data yet: inbound latency comes from order-state snapshots, outbound from orderflow-sync's channel acknowledgements.",
    onHand: "On hand", sold28: "Sold (28 d)", cover: "Days of cover",
    history: "Units sold", forecastLine: "Forecast", band: "80% interval",
    backtest: "Backtest (last 14 days) MAPE: model {model}, seasonal naive {naive} ({n} SKUs)",
    customers: "Customers", crossChannel: "{n} customers linked across channels (phone hash)",
    noCharts: "The chart library is not installed (run scripts/web.sh install); cards and tables still work.",
    loadError: "Could not load data: ",
    seg_important_value: "Important value", seg_important_develop: "Important to develop", seg_important_keep: "Important to keep",
    seg_important_retain: "Important to win back", seg_general_value: "General value", seg_general_develop: "General to develop",
    seg_general_keep: "General to keep", seg_general_retain: "General to win back",
    ch_tmall: "Tmall", ch_jd: "JD", ch_douyin: "Douyin", ch_web: "Web mall", ch_miniapp: "Mini-program", ch_store: "Stores", ch_all: "All",
    ex_payment_timeout: "Payment timeout", ex_invalid_address: "Invalid address", ex_invalid_phone: "Invalid phone",
    ex_blacklisted_phone: "Blacklisted phone", ex_out_of_stock_at_review: "Out of stock at review", ex_suspected_fraud: "Suspected fraud",
    ex_invoice_invalid: "Invalid invoice", ex_duplicate_order: "Duplicate order", ex_amount_mismatch: "Amount mismatch",
    ex_duplicate_payment: "Duplicate payment", ex_illegal_transition: "Illegal transition", ex_sync_failure: "Sync failure",
    ex_review_overdue: "Review overdue",
    ow_customer_service: "Customer service", ow_warehouse: "Warehouse", ow_risk: "Risk", ow_finance: "Finance", ow_operations: "Operations",
  },
};

const state = {
  lang: new URLSearchParams(location.search).get("lang") || localStorage.getItem("orderflow.lang") || "zh",
  zone: "Asia/Shanghai",
  data: {},
  charts: {},
  refreshing: false,
  again: false,
};
if (!I18N[state.lang]) state.lang = "zh";
// No chart animation under automation, so a screenshot shows the finished chart.
const ANIMATE = !navigator.webdriver;

function t(key, vars) {
  let text = (I18N[state.lang] && I18N[state.lang][key]) || I18N.zh[key] || key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, value);
  return text;
}

// Money: integer fen → "¥1,234.50".
function yuan(fen) {
  if (fen === null || fen === undefined) return "–";
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  const whole = Math.floor(abs / 100).toLocaleString("en-US");
  return `${sign}¥${whole}.${String(abs % 100).padStart(2, "0")}`;
}
function pct(rate) { return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`; }
function num(n, digits = 0) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function duration(secs) {
  if (secs === null || secs === undefined) return "–";
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${(secs / 60).toFixed(1)} min`;
  if (secs < 86400) return `${(secs / 3600).toFixed(1)} h`;
  return `${(secs / 86400).toFixed(1)} d`;
}
function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1000) return `${value} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}
// An epoch-ms time in the display zone.
function when(epochMs) {
  return new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: state.zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(epochMs));
}
function channelName(code) { return t(`ch_${code}`); }
function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function query(extra) {
  const params = new URLSearchParams();
  params.set("days", document.getElementById("days").value);
  const channel = document.getElementById("channel").value;
  if (channel) params.set("channel", channel);
  for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
  return params.toString();
}

async function getJson(path, extra) {
  const response = await fetch(`/api/${path}?${query(extra)}`);
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return response.json();
}

function table(headers, rows, rowClass) {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((row, i) => `<tr${rowClass ? ` class="${rowClass(i)}"` : ""}>${row.map((cell) => (
    typeof cell === "object" && cell !== null ? `<td class="${cell.cls || ""}" data-value="${escapeHtml(cell.value ?? "")}">${escapeHtml(cell.text)}</td>` : `<td>${escapeHtml(cell)}</td>`
  )).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

const CARDS = [
  { key: "valid_orders", format: (k) => num(k.valid_orders), raw: (k) => k.valid_orders },
  { key: "daily_valid_orders", format: (k) => num(k.daily_valid_orders, 2), raw: (k) => k.daily_valid_orders },
  { key: "gmv", format: (k) => yuan(k.gmv_fen), raw: (k) => k.gmv_fen },
  { key: "aov", format: (k) => yuan(k.aov_fen), raw: (k) => k.aov_fen },
  { key: "return_rate", format: (k) => pct(k.return_rate), raw: (k) => k.return_rate, lowerIsBetter: true },
  { key: "repurchase_rate", format: (k) => pct(k.repurchase_rate), raw: (k) => k.repurchase_rate },
  { key: "new_customers", format: (k) => num(k.new_customers), raw: (k) => k.new_customers },
  { key: "payment_conversion", format: (k) => pct(k.payment_conversion), raw: (k) => k.payment_conversion },
  { key: "orders", format: (k) => num(k.orders), raw: (k) => k.orders },
  { key: "cancelled", format: (k) => num(k.cancelled), raw: (k) => k.cancelled, lowerIsBetter: true },
];

function drawCards(overview) {
  const k = overview.kpis, p = overview.previous;
  document.getElementById("cards").innerHTML = CARDS.map((card) => {
    const now = card.raw(k), before = card.raw(p);
    let delta = "", cls = "";
    if (typeof now === "number" && typeof before === "number" && before !== 0) {
      const change = (now - before) / Math.abs(before) * 100;
      delta = `${t("vsPrevious")} ${change >= 0 ? "+" : ""}${change.toFixed(1)}%`;
      const good = card.lowerIsBetter ? change < 0 : change > 0;
      cls = change === 0 ? "" : good ? "up" : "down";
    }
    return `<div class="card" data-kpi="${card.key}" data-value="${now ?? ""}">
      <div class="label">${escapeHtml(t(`k_${card.key}`))}</div>
      <div class="value">${escapeHtml(card.format(k))}</div>
      <div class="delta ${cls}">${escapeHtml(delta)}</div></div>`;
  }).join("");
  document.getElementById("range-text").textContent = `${overview.range.from} ~ ${overview.range.to}`;
  document.getElementById("zone").textContent = overview.zone;
}

function chart(id) {
  if (typeof echarts === "undefined") return null;
  if (!state.charts[id]) state.charts[id] = echarts.init(document.getElementById(id));
  return state.charts[id];
}

function drawTrend(trend) {
  const c = chart("trend-chart");
  if (!c) return;
  const points = trend.series.all || [];
  c.setOption({
    animation: ANIMATE,
    tooltip: { trigger: "axis" },
    legend: { data: [t("validOrders"), t("gmv")] },
    grid: { left: 50, right: 70, top: 30, bottom: 30 },
    xAxis: { type: "category", data: trend.days },
    yAxis: [{ type: "value", name: t("validOrders") }, { type: "value", name: "¥", axisLabel: { formatter: (v) => `${(v / 100).toLocaleString()}` } }],
    series: [
      { name: t("validOrders"), type: "bar", data: points.map((p) => p.valid_orders) },
      { name: t("gmv"), type: "line", yAxisIndex: 1, smooth: true, data: points.map((p) => p.gmv_fen), tooltip: { valueFormatter: (v) => yuan(v) } },
    ],
  }, true);
}

function drawFunnel(funnel) {
  const all = funnel.channels.all || { reached: {}, durations: {} };
  const c = chart("funnel-chart");
  if (c) {
    c.setOption({
    animation: ANIMATE,
      tooltip: { trigger: "item" },
      series: [{ type: "funnel", sort: "none", left: "5%", width: "70%", label: { position: "right", formatter: "{b} {c}" },
        data: funnel.stages.map((s) => ({ name: t(s), value: all.reached[s] || 0 })) }],
    }, true);
  }
  const pairs = Object.keys(all.durations);
  const channels = Object.keys(funnel.channels).filter((ch) => ch !== "all");
  const rows = pairs.map((pair) => {
    const [a, b] = pair.split("→");
    const cells = ["all", ...channels].map((ch) => {
      const d = (funnel.channels[ch].durations || {})[pair] || {};
      return `${duration(d.p50_secs)} / ${duration(d.p90_secs)}`;
    });
    return [`${t(a)}→${t(b)}`, ...cells];
  });
  document.getElementById("durations").innerHTML = table([t("stage"), t("total"), ...channels.map(channelName)], rows);
}

function drawStuck(stuck) {
  const rows = stuck.oldest.map((o) => [o.order_id, channelName(o.channel), t(o.stage), when(o.since_ms), duration(o.waiting_secs)]);
  const counts = Object.entries(stuck.counts).map(([stage, per]) => `${t(stage)} ${per.all || 0}`).join(" · ");
  document.getElementById("stuck").innerHTML = rows.length
    ? `<p>${escapeHtml(counts)}</p>${table([t("order"), t("channel"), t("stage"), t("since"), t("waiting")], rows)}`
    : `<p>${escapeHtml(t("noStuck"))} (&gt; ${stuck.threshold_minutes} min)</p>`;
}

function drawRfm(rfm) {
  const segments = rfm.summary.segments;
  const c = chart("rfm-chart");
  if (c) {
    c.setOption({
    animation: ANIMATE,
      tooltip: { trigger: "axis" },
      grid: { left: 110, right: 20, top: 10, bottom: 20 },
      xAxis: { type: "value", name: t("customers") },
      yAxis: { type: "category", data: segments.map((s) => t(`seg_${s.code}`)), inverse: true },
      series: [{ type: "bar", data: segments.map((s) => s.customers), label: { show: true, position: "right" } }],
    }, true);
  }
  document.getElementById("rfm-note").textContent = `${t("customers")} ${num(rfm.summary.customers)} · ${t("crossChannel", { n: num(rfm.summary.cross_channel_customers) })}`;
  document.getElementById("rfm-export").href = `/api/rfm/customers.csv?${query()}`;
}

function drawExceptions(ex) {
  const kinds = Object.entries(ex.by_kind).filter(([, a]) => a.raised || a.open || a.resolved);
  document.getElementById("exceptions").innerHTML = table(
    [t("kind"), t("raised"), t("share"), t("resolved"), t("avgHandling"), t("open")],
    kinds.map(([kind, a]) => [t(`ex_${kind}`), num(a.raised), pct(a.share), num(a.resolved), duration(a.avg_handling_secs), num(a.open)]),
  );
  const rows = [];
  for (const [owner, levels] of Object.entries(ex.open)) {
    for (const [level, cell] of Object.entries(levels)) {
      rows.push([t(`ow_${owner}`), level, num(cell.open), { text: num(cell.overdue), value: cell.overdue, cls: cell.overdue ? "overdue" : "" }, duration(cell.oldest_at_level_secs)]);
    }
  }
  document.getElementById("open-exceptions").innerHTML = table([t("owner"), t("level"), t("open"), t("overdue"), t("oldest")], rows);
}

function drawReturns(returns) {
  document.getElementById("returns").innerHTML = table(
    [t("sku"), t("category"), t("shippedOrders"), t("returnedOrders"), t("returnRate")],
    returns.map((r) => [r.sku, r.category, num(r.shipped_orders), num(r.returned_orders), pct(r.return_rate)]),
  );
}

function drawSync(sync) {
  const channels = [...new Set([...Object.keys(sync.inbound), ...Object.keys(sync.outbound)])].sort((a, b) => (a === "all") - (b === "all") || a.localeCompare(b));
  if (!channels.length) {
    document.getElementById("sync").innerHTML = `<p>${escapeHtml(t("noSync"))}</p>`;
    return;
  }
  document.getElementById("sync").innerHTML = table(
    [t("channel"), t("inbound"), t("samples"), t("outbound"), t("samples")],
    channels.map((ch) => {
      const i = sync.inbound[ch] || {}, o = sync.outbound[ch] || {};
      return [channelName(ch), `${ms(i.p50_ms)} / ${ms(i.p90_ms)}`, num(i.n || 0), `${ms(o.p50_ms)} / ${ms(o.p90_ms)}`, num(o.n || 0)];
    }),
  );
}

function drawForecast(f) {
  const b = f.backtest;
  document.getElementById("backtest").textContent = t("backtest", {
    model: b.model_mape === null ? "–" : `${b.model_mape.toFixed(1)}%`,
    naive: b.naive_mape === null ? "–" : `${b.naive_mape.toFixed(1)}%`, n: b.skus,
  });
  const c = chart("forecast-chart");
  const first = f.forecasts[0];
  if (!c || !first) return;
  const days = [...first.history_days.slice(-42), ...first.days];
  const pad = (n) => new Array(n).fill(null);
  const series = [];
  f.forecasts.slice(0, 3).forEach((sku) => {
    const history = sku.history.slice(-42);
    series.push({ name: `${sku.sku} ${t("history")}`, type: "line", data: [...history, ...pad(sku.days.length)], showSymbol: false });
    series.push({ name: `${sku.sku} ${t("forecastLine")}`, type: "line", lineStyle: { type: "dashed" }, data: [...pad(history.length - 1), history[history.length - 1], ...sku.point], showSymbol: false });
  });
  c.setOption({
    animation: ANIMATE,
    tooltip: { trigger: "axis" }, legend: { type: "scroll" },
    grid: { left: 40, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "category", data: days }, yAxis: { type: "value" }, series,
  }, true);
}

function drawInventory(inv) {
  document.getElementById("inventory").innerHTML = table(
    [t("sku"), t("onHand"), t("sold28"), t("cover")],
    inv.skus.slice(0, 12).map((s) => [s.sku, num(s.on_hand), num(s.units_sold_28d), s.days_of_cover === null ? "–" : num(s.days_of_cover, 1)]),
  );
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = `orderflow ${t("title")}`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("lang").textContent = t("langButton");
  for (const option of document.getElementById("channel").options) {
    if (option.value) option.textContent = channelName(option.value);
  }
}

function redraw() {
  const d = state.data;
  if (d.overview) drawCards(d.overview);
  if (d.trend) drawTrend(d.trend);
  if (d.funnel) drawFunnel(d.funnel);
  if (d.stuck) drawStuck(d.stuck);
  if (d.rfm) drawRfm(d.rfm);
  if (d.exceptions) drawExceptions(d.exceptions);
  if (d.returns) drawReturns(d.returns);
  if (d.sync) drawSync(d.sync);
  if (d.forecast) drawForecast(d.forecast);
  if (d.inventory) drawInventory(d.inventory);
}

async function refresh() {
  if (state.refreshing) { state.again = true; return; }
  state.refreshing = true;
  const notice = document.getElementById("notice");
  try {
    const [status, overview, trend, funnel, stuck, rfm, exceptions, returns, sync, forecast, inventory] = await Promise.all([
      getJson("status"), getJson("overview"), getJson("trend"), getJson("funnel"), getJson("stuck"), getJson("rfm"),
      getJson("exceptions"), getJson("returns"), getJson("sync-latency"), getJson("forecast"), getJson("inventory"),
    ]);
    state.zone = status.zone;
    const select = document.getElementById("channel");
    const known = new Set([...select.options].map((o) => o.value));
    for (const ch of Object.keys(funnel.channels)) {
      if (ch !== "all" && !known.has(ch)) select.add(new Option(channelName(ch), ch));
    }
    state.data = { overview, trend, funnel, stuck, rfm, exceptions, returns, sync, forecast, inventory };
    redraw();
    document.getElementById("updated").textContent = `${t("updated")} ${when(status.now_ms)}`;
    document.body.dataset.generation = String(status.generation);
    document.body.dataset.orders = String(status.orders);
    document.body.dataset.ready = "1";
    if (typeof echarts === "undefined") { notice.textContent = t("noCharts"); notice.hidden = false; } else { notice.hidden = true; }
  } catch (error) {
    notice.textContent = t("loadError") + error.message;
    notice.hidden = false;
  } finally {
    state.refreshing = false;
    if (state.again) { state.again = false; refresh(); }
  }
}

function live() {
  const indicator = document.getElementById("live");
  if (typeof EventSource === "undefined") return;
  const source = new EventSource("/api/events");
  let timer = null;
  source.addEventListener("change", () => {
    indicator.classList.add("on");
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  source.onerror = () => indicator.classList.remove("on");
}

window.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  document.getElementById("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("orderflow.lang", state.lang);
    applyLanguage();
    redraw();
  });
  document.getElementById("days").addEventListener("change", refresh);
  document.getElementById("channel").addEventListener("change", refresh);
  window.addEventListener("resize", () => Object.values(state.charts).forEach((c) => c.resize()));
  refresh();
  live();
  setInterval(refresh, 10000);
});
