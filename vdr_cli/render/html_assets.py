"""The CSS and JavaScript inlined into every `vdr replay --html` report.

Kept apart from the renderer so html.py reads as structure.  The page works
without the script (boxes are inline SVG, thoughts are <details>); the script
only adds "expand all" and a highlight of the box a crop came from.
"""

from __future__ import annotations

# The colour every cropped region is outlined in: the screenshot test looks for it.
BOX_COLOR = "#e6007e"

CSS = """
:root { --fg:#1d1f23; --muted:#5f6670; --line:#d9dde3; --bg:#ffffff; --soft:#f5f7fa;
        --ok:#1a7f37; --bad:#c62828; --box:%(box)s; --accent:#0b57d0; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.15rem; margin: 0 0 4px; color: var(--muted); font-weight: 600; }
h2 { font-size: 1.05rem; margin: 0; }
.question { font-size: 1.45rem; font-weight: 600; margin: 6px 0 12px; white-space: pre-wrap; }
.meta { color: var(--muted); font-size: .88rem; }
.meta span + span::before { content: " · "; }
.answer { border: 2px solid var(--ok); border-radius: 8px; padding: 12px 16px; margin: 16px 0; background: #f3fbf5; }
.answer.missing { border-color: var(--bad); background: #fdf3f3; }
.answer p { margin: 4px 0 0; white-space: pre-wrap; font-size: 1.1rem; }
.images { display: flex; flex-wrap: wrap; gap: 16px; margin: 16px 0; }
figure { margin: 0; }
figure.source svg { display: block; width: 100%%; height: auto; border: 1px solid var(--line); background: var(--soft); }
figcaption { color: var(--muted); font-size: .85rem; margin-top: 4px; }
svg .box rect { fill: none; stroke: var(--box); stroke-width: 3; vector-effect: non-scaling-stroke; }
svg .box text { fill: var(--box); stroke: #fff; paint-order: stroke; font-weight: 700; font-family: system-ui,sans-serif; }
svg a:hover rect, svg .box.lit rect { stroke-width: 6; }
.step { border-top: 1px solid var(--line); padding: 14px 0 6px; }
.step > header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.step.invalid > header h2 { color: var(--bad); }
details { margin: 6px 0; }
details > summary { cursor: pointer; color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: var(--soft); padding: 8px 10px; border-radius: 6px;
      margin: 4px 0; font: 13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
.call { margin: 8px 0 4px; }
.call code.tool { font-weight: 700; color: var(--accent); }
.result { border-left: 3px solid var(--ok); padding: 2px 0 2px 12px; margin: 6px 0 10px; }
.result.failed { border-left-color: var(--bad); }
.digest { font-size: .92rem; }
.digest .mark { font-weight: 700; }
.result.failed .digest .mark, .error { color: var(--bad); }
.result .digest .mark { color: var(--ok); }
.result.failed .digest .mark { color: var(--bad); }
ol.hits { margin: 4px 0; padding-left: 28px; }
p.query { margin: 8px 0 0; font-size: .88rem; color: var(--muted); }
ol.hits li { margin: 2px 0; }
.url { color: var(--muted); font-size: .82rem; word-break: break-all; }
.snippet { color: var(--muted); font-size: .88rem; margin: 0; }
.page { margin: 6px 0; }
.page .summary { margin: 2px 0; white-space: pre-wrap; }
.crops { display: flex; flex-wrap: wrap; gap: 12px; margin: 6px 0; }
figure.crop img { display: block; max-width: 260px; max-height: 260px; border: 2px solid var(--box); }
figure.crop.lit img { outline: 4px solid var(--box); }
.nofile { display:block; width: 160px; padding: 30px 8px; text-align: center; color: var(--muted); border: 2px dashed var(--box); }
table.totals { border-collapse: collapse; margin: 8px 0; }
table.totals th, table.totals td { text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid var(--line); font-size: .92rem; }
.incomplete { color: var(--bad); font-weight: 600; }
.toolbar { float: right; }
button { font: inherit; font-size: .85rem; padding: 3px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--soft); cursor: pointer; }
@media print { .toolbar { display: none; } details { display: block; } }
""" % {"box": BOX_COLOR}

# Inline, and allowed by its hash in the page's Content-Security-Policy: no
# other script can run in a report, whatever a trace holds.
JS = """
(function () {
  var open = false;
  var button = document.getElementById("toggle");
  if (button) button.addEventListener("click", function () {
    open = !open;
    document.querySelectorAll("details").forEach(function (d) { d.open = open; });
    button.textContent = open ? "collapse all" : "expand all";
  });
  function lit(id, on) {
    document.querySelectorAll("[data-box='" + id + "']").forEach(function (el) { el.classList.toggle("lit", on); });
  }
  document.querySelectorAll("[data-box]").forEach(function (el) {
    var id = el.getAttribute("data-box");
    el.addEventListener("mouseenter", function () { lit(id, true); });
    el.addEventListener("mouseleave", function () { lit(id, false); });
  });
})();
"""
