/* The manager's dashboard (bot/dashboard_page/README.md).
 *
 * Signs in with what the messenger put in the page's URL: Telegram's fragment
 * (#tgWebAppData=…&tgWebAppThemeParams=…), or WeCom's query (?via=wecom&code=…). The desk
 * answers a token (POST dashboard/api/session), sent as `Authorization: Bearer …` with every
 * data call (not a cookie: Telegram Web runs the page in a cross-site frame).
 *
 * Every text that comes from the server is put in as text (textContent, text nodes): customer
 * names and messages may hold HTML. Nothing here uses innerHTML. */
(function () {
  "use strict";

  // Every string this page says, in Chinese and in English.
  const TEXT = {
    zh: {
      title: "投诉看板",
      signingIn: "正在确认您的身份…",
      loading: "加载中…",
      openFromBot: "请在 Telegram 机器人私聊或企业微信应用里发送 /dashboard，再点消息里的按钮打开看板。",
      reopenWecom: "会话已过期：请在企业微信应用里重新发送 /dashboard，再点新的卡片打开看板。",
      refused: "无法打开看板",
      failed: "没有加载成功，请稍后重试。",
      retry: "重试",
      period: "时间范围",
      p7d: "近 7 天",
      p30d: "近 30 天",
      thisMonth: "本月：{month}（截至现在）",
      lastMonth: "上个月：{month}",
      overview: "概览",
      total: "投诉",
      open: "未结投诉",
      onTimeShare: "首次回复按时率",
      firstAnswer: "首次回复（中位数）",
      resolve: "解决用时（中位数）",
      satisfaction: "满意度",
      heat: "投诉热力图：类别 × 周",
      heatNote: "每列是一周（从周一算起），颜色越深投诉越多。",
      part: "部分",
      partOf: "这一周只有 {from}–{to} 在所选时间范围内",
      partOfDay: "这一周只有 {day} 在所选时间范围内",
      partNote: "标“部分”的周只算了其中几天，和整周比较时请留意。",
      stores: "门店 × 类别",
      category: "类别",
      store: "门店",
      quiet: "这段时间没有投诉。",
      backlog: "未结投诉",
      backlogNote: "点一行查看全程记录。超时的排在最前。",
      backlogEmpty: "没有未结投诉。",
      reference: "单号",
      severity: "严重程度",
      takenBy: "处理人",
      age: "已等待",
      deadline: "下一个时限",
      nobody: "未认领",
      overdue: "已超时",
      lateBy: "超时 {span}",
      dueIn: "还剩 {span}",
      dueAt: "（{time}）",
      onTime: "首次回复按时率（每周）",
      onTimeNote: "按时：在 {span}内首次回复客户。",
      onTimeNoteAny: "按时：在规定时间内首次回复客户。",
      week: "周",
      answered: "已回复",
      inTime: "按时",
      share: "按时率",
      figures: "查看明细",
      ratings: "{n} 条评价",
      noRatings: "还没有评价",
      repeats: "高频问题",
      products: "商品",
      batches: "批次",
      rootCauses: "原因",
      none: "暂无",
      back: "← 返回",
      customer: "客户",
      status: "状态",
      desk: "系统",
      minutes: "{n} 分钟",
      hours: "{n} 小时",
      days: "{n} 天",
      minute: "{n} 分钟",
      longMinutes: "{n} 分钟",
      hour: "{n} 小时",
      longHours: "{n} 小时",
      cell: "{row}，{col}：{n} 件",
      kinds: {
        first_response: "首次回复",
        progress: "告知进度",
        resolution: "解决",
        follow_up: "回访",
        auto_close: "自动结案",
        intake_timeout: "自动提交",
      },
    },
    en: {
      title: "Complaint dashboard",
      signingIn: "Checking who you are…",
      loading: "Loading…",
      openFromBot: "Open this page from the bot: send /dashboard to the bot in a private Telegram chat or to the WeCom app, then tap the button in its answer.",
      reopenWecom: "The session has expired: send /dashboard to the WeCom app again and open the dashboard from the new card.",
      refused: "The dashboard cannot open",
      failed: "It did not load. Please try again in a moment.",
      retry: "Try again",
      period: "Period",
      p7d: "7 days",
      p30d: "30 days",
      thisMonth: "This month: {month} (so far)",
      lastMonth: "Last month: {month}",
      overview: "Overview",
      total: "Complaints",
      open: "Open complaints",
      onTimeShare: "First answers on time",
      firstAnswer: "First answer (median)",
      resolve: "Time to resolve (median)",
      satisfaction: "Satisfaction",
      heat: "Heat map: category × week",
      heatNote: "Each column is a week (from Monday); the darker, the more complaints.",
      part: "part",
      partOf: "Only {from} – {to} of this week is in the period",
      partOfDay: "Only {day} of this week is in the period",
      partNote: "“part”: only some days of that week are in the period; mind it when comparing with a whole week.",
      stores: "Store × category",
      category: "Category",
      store: "Store",
      quiet: "No complaints in this period.",
      backlog: "Open complaints",
      backlogNote: "Tap a row for its timeline. Overdue ones come first.",
      backlogEmpty: "No open complaints.",
      reference: "Ticket",
      severity: "Severity",
      takenBy: "Who has it",
      age: "Age",
      deadline: "Next deadline",
      nobody: "Nobody yet",
      overdue: "Overdue",
      lateBy: "{span} late",
      dueIn: "in {span}",
      dueAt: " ({time})",
      onTime: "First answers on time, by week",
      onTimeNote: "On time: first answer within {span}.",
      onTimeNoteAny: "On time: first answer within the promised time.",
      week: "Week",
      answered: "Answered",
      inTime: "On time",
      share: "Share",
      figures: "Show the details",
      ratings: "{n} ratings",
      noRatings: "No ratings yet",
      repeats: "Repeat problems",
      products: "Products",
      batches: "Batches",
      rootCauses: "Root causes",
      none: "None",
      back: "← Back",
      customer: "Customer",
      status: "Status",
      desk: "Desk",
      minutes: "{n} min",
      hours: "{n} h",
      days: "{n} days",
      minute: "{n} minute",
      longMinutes: "{n} minutes",
      hour: "{n} hour",
      longHours: "{n} hours",
      cell: "{row}, {col}: {n}",
      kinds: {
        first_response: "first answer",
        progress: "progress news",
        resolution: "resolution",
        follow_up: "follow-up",
        auto_close: "auto close",
        intake_timeout: "intake timeout",
      },
    },
  };

  const THEME_KEYS = [
    "bg_color", "text_color", "hint_color", "link_color", "button_color", "button_text_color",
    "secondary_bg_color",
  ];

  let lang = "zh";
  let token = null;
  let via = "telegram";  // the messenger the session came from
  let launched = null;  // what Telegram put in the URL, kept to sign in again when the hour is up
  let renewal = null;  // the sign-in again under way (or done): {from: the token it replaces, done}
  let now = null;  // the desk's time, from the backlog's answer
  let zone = null;  // the shop's time zone (IANA), from the first figures: its weeks, months, clock
  let tickets = null;  // the backlog on screen (drawn again once the shop's zone is known)
  let period = "7d";
  let figuresAsked = 0;  // the latest figures call: an older answer that comes late is dropped
  let chart = null;
  let shown = null;  // the figures on screen (drawn again when Telegram's theme changes)
  const app = document.getElementById("app");
  const dialog = document.getElementById("ticket");

  function t(key, values) {
    const text = TEXT[lang][key] !== undefined ? TEXT[lang][key] : TEXT.zh[key];
    if (typeof text !== "string") return text;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(values ? values[name] : ""));
  }

  function languageOf(code) {
    if (!code) return null;
    return String(code).toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  // An element: `el("td", {className: "x", dataset: {a: "1"}}, "text", child, …)`. Strings
  // become text nodes, never markup.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "on") for (const [kind, fn] of Object.entries(value)) node.addEventListener(kind, fn);
      else if (name in node) node[name] = value;
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(...children) {
    app.replaceChildren(...children);
    app.setAttribute("aria-busy", "false");
  }

  function message(title, text, action) {
    document.title = t("title");
    show(el("section", { className: "notice", id: "message" },
      title ? el("h1", {}, title) : null,
      el("p", {}, text),
      action || null));
  }

  // ---- what the messenger put in the URL ----

  function launch() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const query = new URLSearchParams(location.search);
    if (fragment.get("tgWebAppData")) {
      const initData = fragment.get("tgWebAppData");
      let user = null;
      try { user = JSON.parse(new URLSearchParams(initData).get("user") || "null"); } catch (e) { user = null; }
      let theme = null;
      try { theme = JSON.parse(fragment.get("tgWebAppThemeParams") || "null"); } catch (e) { theme = null; }
      return { via: "telegram", body: initData, theme, language: languageOf(user && user.language_code) };
    }
    if (query.get("via") === "wecom" && query.get("code")) {
      return { via: "wecom", body: query.get("code"), theme: null, language: null };
    }
    return null;
  }

  function applyTheme(theme) {
    if (!theme || typeof theme !== "object") return;
    const root = document.documentElement;
    for (const key of THEME_KEYS) {
      const value = theme[key];
      if (typeof value === "string" && /^#[0-9a-fA-F]{3,8}$/.test(value)) {
        root.style.setProperty("--" + key.replace(/_color$/, "").replace(/_/g, "-"), value);
      }
    }
    if (typeof theme.bg_color === "string") {
      const dark = luminance(theme.bg_color) < 0.2;
      root.classList.toggle("dark", dark);
      root.classList.toggle("light", !dark);
      root.style.colorScheme = dark ? "dark" : "light";
    }
    if (shown) showFigures(shown);
  }

  function rgb(hex) {
    let h = String(hex || "").trim().replace(/^#/, "");
    if (!/^[0-9a-fA-F]{3,8}$/.test(h)) return null;
    if (h.length < 6) h = h.split("").map((c) => c + c).join("");
    return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  }

  // WCAG's relative luminance of an sRGB colour
  function luminance(hex) {
    const [r, g, b] = (Array.isArray(hex) ? hex : rgb(hex) || [255, 255, 255]).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function contrast(a, b) {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  }

  // A heat cell's colours: the heat colour laid over the panel's at `level` (0..1), and
  // whichever text colour, dark or light, reads better on it.
  function heatColours(level) {
    const under = rgb(css("--secondary-bg")) || [241, 242, 245];
    const heat = rgb(css("--heat")) || [211, 47, 47];
    const mixed = under.map((u, i) => Math.round(u + (heat[i] - u) * level));
    const dark = [28, 28, 30];
    const light = [255, 255, 255];
    const text = contrast(mixed, dark) >= contrast(mixed, light) ? dark : light;
    return { background: "rgb(" + mixed.join(",") + ")", color: "rgb(" + text.join(",") + ")" };
  }

  // Tell Telegram the page is ready (and may have the full height), as its own script does:
  // the native apps' bridge, or a message to the parent frame for Telegram Web.
  function tellTelegram(kind, data) {
    try {
      if (window.TelegramWebviewProxy && window.TelegramWebviewProxy.postEvent) {
        window.TelegramWebviewProxy.postEvent(kind, data === undefined ? "" : JSON.stringify(data));
      } else if (window.parent && window.parent !== window) {
        window.parent.postMessage(JSON.stringify({ eventType: kind, eventData: data || "" }), "*");
      }
    } catch (e) { /* not in Telegram */ }
  }

  // Telegram's apps say a new theme by calling this; Telegram Web by a message to the frame.
  function listenToTelegram() {
    const receive = (kind, data) => {
      if (kind === "theme_changed" && data && data.theme_params) applyTheme(data.theme_params);
    };
    window.Telegram = window.Telegram || {};
    window.Telegram.WebView = window.Telegram.WebView || { receiveEvent: receive };
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent) return;
      try {
        const said = JSON.parse(event.data);
        receive(said.eventType, said.eventData);
      } catch (e) { /* not Telegram's */ }
    });
  }

  // ---- the desk's JSON calls ----

  function api(path) {
    return new URL("dashboard/api/" + path, location.href).toString();
  }

  class Refused extends Error {}

  // A data call with the session's token. The token lasts an hour, Telegram's initData a day:
  // when the desk says the token is past its hour (or no longer its own), sign in again once,
  // quietly, with what Telegram put in the URL, and ask again; only a refusal then is shown.
  async function ask(path) {
    let used = token;
    let said = await call(path, used);
    if (said.status === 403 && said.body && ["expired_token", "bad_token"].includes(said.body.error)) {
      await renew(used, said.body.message);
      used = token;
      said = await call(path, used);
    }
    const body = said.body;
    if (said.status === 403) throw new Refused(body && body.message ? body.message : t("failed"));
    if (!said.ok) {
      const error = new Error(body && body.message ? body.message : t("failed"));
      error.status = said.status;
      throw error;
    }
    return body;
  }

  async function call(path, bearer) {
    let answer;
    try {
      answer = await fetch(api(path), {
        headers: { Authorization: "Bearer " + bearer },
        cache: "no-store",
      });
    } catch (e) {
      throw new Error(t("failed"));  // no answer at all (offline, the desk restarting)
    }
    const body = await answer.json().catch(() => null);
    return { status: answer.status, ok: answer.ok, body };
  }

  // One sign-in again for the token that ran out, however many calls found it so.
  function renew(used, why) {
    if (token !== used) return Promise.resolve();  // another call has already renewed it
    if (!renewal || renewal.from !== used) renewal = { from: used, done: signInAgain(why) };
    return renewal.done;
  }

  async function signInAgain(why) {
    // WeCom's code is good once, and spent: only the app can give a new one
    if (via === "wecom") throw new Refused(t("reopenWecom"));
    if (!launched) throw new Refused(why || t("failed"));
    let answer;
    try {
      answer = await postSession(launched);
    } catch (e) {
      throw new Error(t("failed"));
    }
    const body = await answer.json().catch(() => null);
    if (answer.status === 403) throw new Refused(body && body.message ? body.message : why);
    if (!answer.ok || !body || !body.token) throw new Error(t("failed"));
    token = body.token;
    remember({ token, language: lang, via });
  }

  function postSession(from) {
    return fetch(api(from.via === "wecom" ? "session?via=wecom" : "session"), {
      method: "POST",
      body: from.body,
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      cache: "no-store",
    });
  }

  function remember(session) {
    try { sessionStorage.setItem("desk.dashboard", JSON.stringify(session)); } catch (e) { /* blocked */ }
  }

  function remembered() {
    try { return JSON.parse(sessionStorage.getItem("desk.dashboard") || "null"); } catch (e) { return null; }
  }

  function forget() {
    try { sessionStorage.removeItem("desk.dashboard"); } catch (e) { /* blocked */ }
  }

  function refuse(text) {
    forget();
    token = null;
    tickets = null;
    if (dialog.open) dialog.close();
    dialog.replaceChildren();  // no ticket's record stays in the page
    message(t("refused"), text);
  }

  async function signIn(from) {
    message(null, t("signingIn"));
    let answer;
    try {
      answer = await postSession(from);
    } catch (e) {
      return message(t("refused"), t("failed"), retryButton(() => signIn(from)));
    }
    const body = await answer.json().catch(() => null);
    if (answer.status === 403) return refuse(body && body.message ? body.message : t("refused"));
    if (!answer.ok || !body || !body.token) {
      // the desk's own words where it has them (503: the messenger could not be asked yet;
      // WeCom's code is not spent, so the same one is tried again)
      const why = body && body.message ? body.message : t("failed");
      return message(t("refused"), why, retryButton(() => signIn(from)));
    }
    remember({ token: body.token, language: body.language, via: from.via });
    start({ ...body, via: from.via });
  }

  function retryButton(again) {
    return el("button", { type: "button", className: "retry", on: { click: again } }, t("retry"));
  }

  // ---- the page ----

  function start(session) {
    token = session.token;
    via = session.via === "wecom" ? "wecom" : "telegram";
    lang = session.language === "en" ? "en" : "zh";
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.title = t("title");
    zone = null;
    tickets = null;
    period = "7d";
    // the months come with the first figures: they are the shop's, not the device's
    const tabs = el("div", { className: "tabs", role: "tablist", "aria-label": t("period") },
      tab("7d", t("p7d")), tab("30d", t("p30d")));
    show(
      el("header", { className: "top" }, el("h1", {}, t("title")), tabs),
      el("section", { id: "overview", className: "cards", "aria-label": t("overview") }, loading()),
      section("heat", t("heat"), t("heatNote")),
      section("stores", t("stores")),
      section("backlog", t("backlog"), t("backlogNote")),
      section("on-time", t("onTime"), ""),
      section("satisfaction", t("satisfaction")),
      section("repeats", t("repeats")),
    );
    document.getElementById("stores").hidden = true;
    loadBacklog();
    loadFigures();
  }

  function tab(value, label, title) {
    return el("button", {
      type: "button", role: "tab", className: "tab", dataset: { period: value }, title,
      "aria-selected": String(value === period),
      on: { click: () => choose(value) },
    }, label);
  }

  // The shop's last month and this one (`YYYY-MM`), as of the desk's `moment`, in its zone.
  function months(moment) {
    const parts = {};
    for (const part of formatter("en-US", { year: "numeric", month: "numeric" }).formatToParts(moment)) {
      parts[part.type] = Number(part.value);
    }
    const key = (year, month) => year + "-" + String(month).padStart(2, "0");
    const last = parts.month === 1 ? key(parts.year - 1, 12) : key(parts.year, parts.month - 1);
    return { last, current: key(parts.year, parts.month) };
  }

  function addMonthTabs(figures) {
    const tabs = app.querySelector(".tabs");
    if (!tabs || tabs.querySelector('[data-month]')) return;
    const { last, current } = months(new Date(figures.period.end));
    const name = (month, options) => new Intl.DateTimeFormat(locale(), { ...options, timeZone: "UTC" })
      .format(weekDate(month + "-01"));
    for (const [month, which] of [[last, "lastMonth"], [current, "thisMonth"]]) {
      const button = tab(month, name(month, { month: "short" }),
        t(which, { month: name(month, { year: "numeric", month: "long" }) }));
      button.dataset.month = which;
      tabs.append(button);
    }
  }

  function choose(value) {
    period = value;
    for (const tab of app.querySelectorAll(".tab")) {
      tab.setAttribute("aria-selected", String(tab.dataset.period === value));
    }
    loadFigures();
  }

  function section(id, title, note) {
    return el("section", { id, className: "panel" },
      el("h2", {}, title),
      note !== undefined ? el("p", { className: "note" }, note) : null,
      el("div", { className: "body" }, loading()));
  }

  function loading() {
    return el("p", { className: "loading" }, t("loading"));
  }

  function fill(id, ...children) {
    const part = document.getElementById(id);
    if (!part) return;
    const body = part.classList.contains("cards") ? part : part.querySelector(".body");
    body.replaceChildren(...children);
  }

  function failed(id, error, again) {
    fill(id, el("p", { className: "error" }, error.message || t("failed")), retryButton(again));
  }

  async function loadBacklog() {
    try {
      const backlog = await ask("backlog");
      if (!token) return;
      now = new Date(backlog.now);
      tickets = backlog.tickets;
      fill("backlog", backlogTable(tickets));
    } catch (error) {
      if (error instanceof Refused) return refuse(error.message);
      failed("backlog", error, loadBacklog);
    }
  }

  async function loadFigures() {
    const asked = ++figuresAsked;
    for (const id of ["heat", "on-time", "satisfaction", "repeats"]) fill(id, loading());
    try {
      const figures = await ask("figures?period=" + encodeURIComponent(period));
      if (asked !== figuresAsked || !token) return;
      if (!zone) learnZone(figures);
      showFigures(figures);
    } catch (error) {
      if (error instanceof Refused) return refuse(error.message);
      if (asked !== figuresAsked) return;
      for (const id of ["heat", "on-time", "satisfaction", "repeats"]) failed(id, error, loadFigures);
      fill("overview");
    }
  }

  // The shop's time zone, from the first figures: the month tabs, the backlog's deadlines and
  // the timeline's times are the shop's from then on, wherever the manager's phone is.
  function learnZone(figures) {
    const given = figures.period && figures.period.timezone;
    try {
      new Intl.DateTimeFormat("en", { timeZone: given });
      zone = given || Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (e) {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;  // a zone this browser lacks
    }
    addMonthTabs(figures);
    if (tickets) fill("backlog", backlogTable(tickets));
  }

  function showFigures(figures) {
    shown = figures;
    fill("overview", ...overview(figures));
    const weeks = figures.heat.weeks.map((week) => weekColumn(week, figures.period));
    fill("heat", ...(figures.heat.rows.length
      ? [heatTable("heat-table", t("category"), weeks,
        figures.heat.rows.map((row) => ({ key: row.key, label: row.label, counts: row.counts })), figures.heat.max),
      weeks.some((week) => week.part) ? el("p", { className: "note part-note" }, t("partNote")) : null]
      : [el("p", { className: "empty" }, t("quiet"))]));
    const stores = document.getElementById("stores");
    stores.hidden = !figures.stores;
    if (figures.stores) {
      fill("stores", heatTable("stores-table", t("store"), figures.stores.categories,
        figures.stores.rows.map((row) => ({ key: row.store, label: row.store, counts: row.counts })),
        figures.stores.max));
    }
    const minutes = figures.on_time.within_minutes;
    document.querySelector("#on-time .note").textContent = Number.isInteger(minutes) && minutes > 0
      ? t("onTimeNote", { span: longSpan(minutes) }) : t("onTimeNoteAny");
    fill("on-time", ...onTime(figures.on_time, figures.period));
    fill("satisfaction", ...satisfaction(figures.satisfaction));
    fill("repeats", repeats(figures.repeats));
  }

  // ---- formatting ----

  function locale() {
    return lang === "en" ? "en-GB" : "zh-CN";
  }

  // Dates and times as the shop's clock shows them (the device's only until the zone is known).
  function formatter(where, options) {
    return new Intl.DateTimeFormat(where, { ...options, timeZone: zone || undefined });
  }

  function number(value, digits) {
    return new Intl.NumberFormat(locale(), {
      maximumFractionDigits: digits === undefined ? 1 : digits,
    }).format(value);
  }

  function span(minutes) {
    const m = Math.abs(minutes);
    if (m < 90) return t("minutes", { n: number(Math.round(m), 0) });
    if (m < 48 * 60) return t("hours", { n: number(m / 60) });
    return t("days", { n: number(m / 1440) });
  }

  // a duration said in full: "10 分钟", "10 minutes", "2 hours"
  function longSpan(minutes) {
    if (minutes >= 60 && minutes % 60 === 0) {
      const n = minutes / 60;
      return t(n === 1 ? "hour" : "longHours", { n: number(n, 0) });
    }
    return t(minutes === 1 ? "minute" : "longMinutes", { n: number(minutes, 0) });
  }

  // a calendar day (`YYYY-MM-DD`, a Monday the desk names, or a month's first) as a Date at
  // midnight UTC, to be formatted in UTC: the day itself, whatever the zone
  function weekDate(week) {
    const [y, m, d] = week.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d));
  }

  function dayAfter(day, days) {
    return new Date(weekDate(day).getTime() + days * 86400000).toISOString().slice(0, 10);
  }

  function weekLabel(week) {
    return new Intl.DateTimeFormat(locale(), {
      month: "short", day: "numeric", timeZone: "UTC",
    }).format(weekDate(week));
  }

  // A moment as the shop's wall clock reads it, `YYYY-MM-DDTHH:MM:SS`: such stamps sort as
  // the moments do, so a week's bounds can be compared with the period's.
  function wallClock(iso) {
    const parts = {};
    const options = {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    };
    for (const part of formatter("en-US", options).formatToParts(new Date(iso))) parts[part.type] = part.value;
    return parts.year + "-" + parts.month + "-" + parts.day + "T" + parts.hour + ":" + parts.minute + ":" + parts.second;
  }

  // A week's column: its Monday, and whether the period covers only part of it (the 7 days
  // from a Tuesday end on the next Tuesday: two weeks, neither whole), and which days then.
  function weekColumn(week, p) {
    const column = { key: week, label: weekLabel(week), part: false };
    if (!p || !p.start || !p.end) return column;
    const start = wallClock(p.start);
    const end = wallClock(p.end);
    const sunday = dayAfter(week, 6);
    if (start <= week + "T00:00:00" && end >= dayAfter(week, 7) + "T00:00:00") return column;
    const first = start.slice(0, 10) > week ? start.slice(0, 10) : week;
    const lastDay = end.endsWith("T00:00:00") ? dayAfter(end.slice(0, 10), -1) : end.slice(0, 10);
    const last = lastDay < sunday ? lastDay : sunday;
    column.part = true;
    column.title = first === last
      ? t("partOfDay", { day: weekLabel(first) })
      : t("partOf", { from: weekLabel(first), to: weekLabel(last) });
    return column;
  }

  function shortDate(seconds) {
    return new Intl.DateTimeFormat(locale(), {
      month: "numeric", day: "numeric", timeZone: "UTC",
    }).format(new Date(seconds * 1000));
  }

  // a moment on the shop's clock: "12月1日 09:05", "1 Dec, 09:05"
  function moment(iso) {
    return formatter(locale(), {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).format(new Date(iso));
  }

  // a deadline on the shop's clock: the time alone today, the day as well on another
  function clockTime(iso) {
    const today = wallClock(now || new Date()).slice(0, 10);
    if (wallClock(iso).slice(0, 10) === today) {
      return formatter(locale(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
    }
    return moment(iso);
  }

  function percent(share) {
    return share === null || share === undefined ? "—" : number(share * 100, 0) + "%";
  }

  // ---- the parts ----

  function overview(f) {
    const answered = f.on_time.answered.reduce((a, b) => a + b, 0);
    const inTime = f.on_time.in_time.reduce((a, b) => a + b, 0);
    const card = (key, label, value) => el("div", { className: "card", dataset: { figure: key } },
      el("span", { className: "value" }, value), el("span", { className: "label" }, label));
    return [
      card("total", t("total"), number(f.total, 0)),
      card("open", t("open"), number(f.backlog, 0)),
      card("on-time", t("onTimeShare"), answered ? percent(inTime / answered) : "—"),
      card("first-answer", t("firstAnswer"),
        f.first_answer_median_minutes === null ? "—" : span(f.first_answer_median_minutes)),
      card("resolve", t("resolve"),
        f.resolve_median_hours === null ? "—" : span(f.resolve_median_hours * 60)),
      card("satisfaction", t("satisfaction"),
        f.satisfaction.average === null ? "—" : number(f.satisfaction.average) + " / 5"),
    ];
  }

  // A heat map: a row per key, a column per `columns`, each cell its count; the cell's colour
  // says the count against the table's largest (`--level`, 0..1).
  function heatTable(id, corner, columns, rows, max) {
    const head = el("tr", {}, el("th", { scope: "col", className: "corner" }, corner),
      columns.map((column) => el("th", {
        scope: "col", className: column.part ? "part" : null, title: column.title,
        dataset: { column: column.key },
      }, column.label, column.part ? el("small", {}, t("part")) : null)));
    const body = rows.map((row) => el("tr", { dataset: { row: row.key } },
      el("th", { scope: "row" }, row.label),
      row.counts.map((count, i) => {
        const level = max > 0 && count > 0 ? 0.15 + 0.85 * (count / max) : 0;
        const cell = el("td", {
          className: "cell" + (count === 0 ? " zero" : ""),
          dataset: { column: columns[i].key, count: String(count), level: level.toFixed(2) },
          title: t("cell", { row: row.label, col: columns[i].label, n: count }),
        }, number(count, 0));
        if (count > 0) Object.assign(cell.style, heatColours(level));
        return cell;
      })));
    const scroll = el("div", { className: "scroll" },
      el("table", { id, className: "heat" }, el("thead", {}, head), el("tbody", {}, body)));
    // the latest weeks are the ones that matter: a narrow screen starts at the right end
    requestAnimationFrame(() => { scroll.scrollLeft = scroll.scrollWidth; });
    return scroll;
  }

  function backlogTable(tickets) {
    if (!tickets.length) return el("p", { className: "empty", id: "backlog-empty" }, t("backlogEmpty"));
    const ordered = tickets.filter((x) => x.overdue).concat(tickets.filter((x) => !x.overdue));
    const head = el("tr", {}, [t("reference"), t("category"), t("severity"), t("takenBy"), t("age"), t("deadline")]
      .map((label, i) => el("th", { scope: "col", className: i === 4 ? "number" : null }, label)));
    const rows = ordered.map((ticket) => {
      const open = () => openTicket(ticket.reference);
      return el("tr", {
        className: "ticket" + (ticket.overdue ? " overdue" : ""),
        tabIndex: 0,
        dataset: { reference: ticket.reference },
        on: {
          click: open,
          keydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } },
        },
      },
      el("td", { className: "reference" }, el("span", { className: "link" }, ticket.reference),
        ticket.overdue ? el("span", { className: "badge" }, t("overdue")) : null),
      el("td", { className: "category" }, ticket.category_label || "—"),
      el("td", { className: "severity" }, ticket.severity_label || "—"),
      el("td", { className: "taken" + (ticket.taken_by ? "" : " hint") }, ticket.taken_by || t("nobody")),
      el("td", { className: "age number", dataset: { label: t("age") } }, span(ticket.age_hours * 60)),
      el("td", { className: "deadline" + (ticket.overdue ? " late" : "") }, deadline(ticket)));
    });
    return el("div", { className: "scroll" },
      el("table", { id: "backlog-table", className: "list backlog" }, el("thead", {}, head), el("tbody", {}, rows)));
  }

  function deadline(ticket) {
    if (!ticket.next_deadline) return "—";
    const kinds = t("kinds");
    const kind = kinds[ticket.next_deadline_kind] || ticket.next_deadline_kind || "";
    const minutes = (new Date(ticket.next_deadline) - (now || new Date())) / 60000;
    const when = minutes <= 0 ? t("lateBy", { span: span(minutes) }) : t("dueIn", { span: span(minutes) });
    // the moment itself only on the shop's clock: until its zone is known, the span alone
    const at = zone
      ? el("time", { className: "at", dateTime: ticket.next_deadline },
        t("dueAt", { time: clockTime(ticket.next_deadline) }))
      : null;
    return [(kind ? kind + " · " : "") + when, at];
  }

  function onTime(o, p) {
    const rows = o.weeks.map((week) => weekColumn(week, p)).map((week, i) => el("tr", {},
      el("th", { scope: "row", className: week.part ? "part" : null, title: week.title },
        week.label, week.part ? el("small", {}, t("part")) : null),
      el("td", { className: "number" }, number(o.in_time[i], 0)),
      el("td", { className: "number" }, number(o.answered[i], 0)),
      el("td", { className: "number" }, percent(o.share[i]))));
    const table = el("details", { className: "figures" }, el("summary", {}, t("figures")),
      el("div", { className: "scroll" }, el("table", { id: "on-time-table", className: "list" },
        el("thead", {}, el("tr", {}, [t("week"), t("inTime"), t("answered"), t("share")]
          .map((label, i) => el("th", { scope: "col", className: i ? "number" : null }, label)))),
        el("tbody", {}, rows))));
    const plot = el("div", { className: "chart", id: "on-time-chart" });
    requestAnimationFrame(() => drawChart(o));
    return [plot, table];
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // The weekly share on time as bars (uPlot, vendored); the table above says the same in figures.
  function drawChart(o) {
    const box = document.getElementById("on-time-chart");
    if (chart) { chart.plot.destroy(); chart = null; }
    if (!box || typeof uPlot === "undefined" || !o.weeks.length) return;
    const xs = o.weeks.map((week) => weekDate(week).getTime() / 1000);
    const ys = o.share.map((share) => (share === null ? null : share * 100));
    const hint = css("--hint") || "#888";
    const bar = css("--button") || "#2481cc";
    const grid = { stroke: css("--grid") || "rgba(128,128,128,0.2)", width: 1 };
    const width = Math.max(240, box.clientWidth);
    const plot = new uPlot({
      width,
      height: 200,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 3.5 * 86400, hi + 3.5 * 86400] }, y: { range: [0, 100] } },
      axes: [
        { stroke: hint, grid: { show: false }, ticks: { show: false }, splits: () => xs,
          // short dates, and on a narrow chart only every so many, so none overlap
          values: (u, splits) => {
            const every = Math.max(1, Math.ceil((splits.length * 48) / Math.max(1, u.bbox.width / devicePixelRatio)));
            return splits.map((s, i) => ((splits.length - 1 - i) % every === 0 ? shortDate(s) : ""));
          } },
        { stroke: hint, grid, ticks: { show: false }, size: 44, splits: () => [0, 25, 50, 75, 100],
          values: (u, splits) => splits.map((s) => s + "%") },
      ],
      series: [
        {},
        { label: t("share"), stroke: bar, fill: bar, width: 0,
          paths: uPlot.paths.bars({ size: [0.6, 48] }), points: { show: false } },
      ],
    }, [xs, ys], box);
    chart = { plot, onTime: o };
    box.dataset.weeks = String(xs.length);
  }

  function satisfaction(s) {
    const scores = [5, 4, 3, 2, 1].map((score) => [score, Number(s.scores[String(score)] || 0)]);
    const most = Math.max(1, ...scores.map(([, n]) => n));
    const average = el("p", { className: "big" },
      s.average === null ? t("noRatings") : number(s.average) + " / 5",
      el("span", { className: "hint" }, " · " + t("ratings", { n: number(s.answers, 0) })));
    const bars = el("div", { className: "bars", id: "satisfaction-scores" }, scores.map(([score, n]) => {
      const fill = el("span", { className: "fill" });
      fill.style.width = (100 * n / most).toFixed(1) + "%";
      return el("div", { className: "bar-row", dataset: { score: String(score) } },
        el("span", { className: "bar-label" }, score + "★"),
        el("span", { className: "bar" }, fill),
        el("span", { className: "number" }, number(n, 0)));
    }));
    return [average, bars];
  }

  function repeats(r) {
    const list = (id, title, items, label) => el("div", { className: "repeat", id },
      el("h3", {}, title),
      items.length
        ? el("ol", {}, items.map((item) => el("li", {},
          el("span", {}, label(item)), el("span", { className: "count" }, number(item.count, 0)))))
        : el("p", { className: "empty" }, t("none")));
    return el("div", { className: "repeats" },
      list("repeat-products", t("products"), r.products, (item) => item.name),
      list("repeat-batches", t("batches"), r.batches, (item) => item.name),
      list("repeat-causes", t("rootCauses"), r.root_causes, (item) => item.label || item.key));
  }

  // ---- a ticket's timeline ----

  async function openTicket(reference) {
    const close = el("button", { type: "button", className: "back", on: { click: () => dialog.close() } }, t("back"));
    const sheet = (...children) => dialog.replaceChildren(el("div", { className: "sheet" }, ...children));
    sheet(el("header", {}, close, el("h2", { id: "ticket-title" }, reference)), loading());
    if (!dialog.open) dialog.showModal();
    try {
      const ticket = await ask("tickets/" + encodeURIComponent(reference));
      if (!dialog.open) return;
      sheet(
        el("header", {}, close, el("h2", { id: "ticket-title" }, ticket.reference)),
        el("dl", { className: "facts" },
          fact(t("customer"), ticket.customer),
          fact(t("category"), ticket.category_label),
          fact(t("severity"), ticket.severity_label),
          fact(t("status"), ticket.status_label)),
        el("ol", { className: "timeline", id: "timeline" }, ticket.entries.map(entry)));
    } catch (error) {
      if (error instanceof Refused) return refuse(error.message);
      sheet(el("header", {}, close, el("h2", { id: "ticket-title" }, reference)),
        el("p", { className: "error" }, error.message || t("failed")));
    }
    close.focus();
  }

  function fact(label, value) {
    return [el("dt", {}, label), el("dd", {}, value || "—")];
  }

  function entry(e) {
    const message = e.kind === "message";
    // `what` is the desk's own label (the same words /ticket says): a photo, "taken", …
    const what = message ? (e.text ? "" : "[" + e.what + "]") : e.what;
    const who = e.role === "bot" ? t("desk") : e.who;
    return el("li", { className: "entry " + (message ? "message " + (e.direction || "") : "event") },
      el("time", { dateTime: e.at }, moment(e.at)),
      who ? el("span", { className: "who" }, who) : null,
      what ? el("span", { className: "what" }, what) : null,
      e.text ? el("p", { className: "text" }, e.text) : null);
  }

  // ---- start ----

  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();  // a tap outside the panel
  });

  function main() {
    listenToTelegram();
    const from = launch();
    lang = (from && from.language) || languageOf(navigator.language) || "zh";
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    document.title = t("title");
    if (from && from.via === "telegram") {
      launched = from;  // good for a day: to sign in again when the session's hour is up
      applyTheme(from.theme);
      tellTelegram("web_app_ready");
      tellTelegram("web_app_expand");
    }
    if (from && from.via === "wecom") {
      // the code is good once: a reload must not send it again (the session is kept instead)
      history.replaceState(null, "", location.pathname + "?via=wecom");
    }
    if (from) return signIn(from);
    const kept = remembered();
    if (kept && kept.token) {
      const wecom = new URLSearchParams(location.search).get("via") === "wecom";
      return start({ ...kept, via: kept.via || (wecom ? "wecom" : "telegram") });
    }
    message(t("title"), t("openFromBot"));
  }

  let resizing = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => { if (chart) drawChart(chart.onTime); });
  });
  main();
})();
