"""The operator status page (``GET /``) and its data (``GET /api/overview``), served by the monitor.

One glance: services, GPUs, warm models, prices, the probe's view, pending
redemptions, the last reward round and earnings. Server-rendered HTML that
reloads itself every 5 s: no script, nothing fetched from elsewhere, so it
works on a host with no internet and in any browser.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from litestar import MediaType, get

from .domain import Overview, pipeline_name

__all__ = ["overview_json", "render_page", "routes"]

WEI_PER_ETH = 10**18

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23}
header{background:#1d1f23;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:14px;padding:14px}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee;font-variant-numeric:tabular-nums}
.mono{font-family:ui-monospace,monospace;overflow-wrap:anywhere;font-size:12px}
th{font-weight:600;color:#555}
.ok{color:#0a7d32;font-weight:600}.bad{color:#c0162b;font-weight:600}.warn{color:#b25e00;font-weight:600}
.badge{padding:2px 10px;border-radius:10px;font-weight:600}
.badge.ok{background:#d7f5e1}.badge.bad{background:#fbd9dd}
.muted{color:#777}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _age(then: float, now: float) -> str:
    secs = max(0.0, now - then)
    if secs < 90:
        return f"{secs:.0f} s ago"
    if secs < 5400:
        return f"{secs / 60:.0f} min ago"
    return f"{secs / 3600:.1f} h ago"


def _bytes(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**30:.1f} GiB"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.0f}%"


def _wei(value: Fraction | int | None) -> str:
    if value is None:
        return "—"
    v = Fraction(value)
    return f"{v.numerator}" if v.denominator == 1 else f"{float(v):.6g}"


def _eth(wei: int) -> str:
    """Wei as ETH, to 6 decimals (exact: no float)."""
    micro = (wei * 10**6 + WEI_PER_ETH // 2) // WEI_PER_ETH
    return f"{micro // 10**6}.{micro % 10**6:06d}".rstrip("0").rstrip(".")


def _state(ok: bool, yes: str = "UP", no: str = "DOWN") -> str:
    return f'<span class="{"ok" if ok else "bad"}">{yes if ok else no}</span>'


def _table(head: list[str], rows: list[list[str]], empty: str, test_id: str) -> str:
    if not rows:
        return f'<p class="muted" data-testid="{test_id}">{_e(empty)}</p>'
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table data-testid="{test_id}"><tr>{ths}</tr>{trs}</table>'


def render_page(ov: Overview, instance: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    down = [name for name, st in ov.services.items() if not st.up]
    summary = (f'<span class="badge ok" id="summary">All {len(ov.services)} services up</span>' if not down else
               f'<span class="badge bad" id="summary">{len(down)} down: {_e(", ".join(down))}</span>')

    services = []
    for name, st in sorted(ov.services.items()):
        fresh = [h for h in st.instances if now - h.at <= 6]
        last = max((h.at for h in st.instances), default=0.0)
        failing = sorted({k for h in fresh for k, c in h.checks.items() if not c.ok})
        services.append([
            _e(name), _state(st.up), f"{st.ready}/{len(fresh)}",
            _age(last, now) if last else '<span class="muted">never</span>',
            _e(", ".join(failing)) or '<span class="muted">none</span>',
        ])

    if ov.gpus:
        gpus = [[
            str(g.index), _e(g.name),
            "—" if g.temperature_c is None else f"{g.temperature_c:.0f} °C",
            f"{_bytes(g.memory_used)} / {_bytes(g.memory_total)}", _pct(g.utilization),
            "—" if g.power_w is None else f"{g.power_w:.0f} W", f"{_pct(g.encoder)} / {_pct(g.decoder)}",
            f'<span class="{"bad" if g.xid_errors else "ok"}">{g.xid_errors}</span>',
        ] for g in ov.gpus]
        gpu_html = _table(["GPU", "Name", "Temp", "Memory", "Util", "Power", "Enc / Dec", "XID"], gpus, "", "gpus")
    else:
        why = f" (NVML: {ov.nvml_error})" if ov.nvml_error else ""
        gpu_html = f'<p class="muted" data-testid="gpus">No GPUs on this host{_e(why)}</p>'

    probe_models = {(m.pipeline, m.model_id): m for m in (ov.probe.models if ov.probe else ())}
    models = []
    for m in ov.models:
        seen = probe_models.get((m.pipeline, m.model_id))
        models.append([
            _e(m.pipeline), _e(m.model_id), _state(m.warm, "warm", "not warm"),
            _state(seen.warm, "warm", "missing") if seen else '<span class="muted">—</span>',
        ])

    prices = []
    if ov.table is not None:
        prices.append(["transcoding (base)", "—", "default", f"{_wei(ov.table.base.value)} wei/pixel"])
        for c in ov.table.capabilities:
            prices.append([_e(pipeline_name(c.capability)), _e(c.model_id), _e(c.gateway),
                           f"{_wei(c.price.value)} wei/unit"])
    price_html = _table(["Pipeline", "Model", "Gateway", "Price"], prices, "No price table yet", "prices")

    if ov.probe is None:
        probe_html = ('<p class="muted" data-testid="probe">Probe off (set BATON_MONITOR_PROBE_ADDRESS)</p>'
                      if not ov.probe_target else
                      f'<p class="muted" data-testid="probe">Probing {_e(ov.probe_target)}: no result yet</p>')
    else:
        p = ov.probe
        cls = {"ok": "ok", "reserve_refused": "warn", "failed": "bad"}[p.state]
        label = {"ok": "OK", "reserve_refused": "answers; probe key unfunded (no ticket params)",
                 "failed": "FAILING"}[p.state]
        rows = [["Target", _e(p.target)], ["State", f'<span class="{cls}">{_e(label)}</span>'],
                ["GetOrchestrator", f"{p.duration * 1000:.0f} ms" + (
                    ' <span class="bad">(over 500 ms)</span>' if p.duration > 0.5 and p.state != "failed" else "")],
                ["Checked", _age(p.at, now)]]
        if p.error:
            rows.append(["Error", f'<span class="bad">{_e(p.error)}</span>'])
        if p.address:
            rows.append(["Orchestrator", f'<span class="mono">{_e(p.address)}</span>'])
        mismatched = [f"{m.pipeline} {m.model_id}" for m in p.models if m.price_mismatch]
        if mismatched:
            rows.append(["Price mismatch", f'<span class="bad">{_e(", ".join(mismatched))}</span>'])
        probe_html = _table(["", ""], rows, "", "probe")

    w = ov.winners
    pay_rows = [
        ["Pending redemptions", (f"{w.count['pending']}" + (f" (oldest {w.oldest_pending / 60:.0f} min)"
                                 if w.count["pending"] else "")) if w else "—"],
        ["Redeemed tickets", str(w.count["redeemed"]) if w else "—"],
        ["Refused tickets", str(w.count["refused"]) if w else "—"],
        ["Earnings (redeemed face value)", f"{_eth(w.earned_wei)} ETH" if w else "—"],
        ["Current round", str(ov.round) if ov.round is not None else '<span class="muted">unknown</span>'],
        ["Last reward round", str(ov.last_reward_round) if ov.last_reward_round is not None
         else '<span class="muted">unknown (chain does not export it)</span>'],
    ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Baton status</title><style>{_CSS}</style></head>
<body><header><h1>Baton status</h1>{summary}<span class="muted">{_e(instance)} · updated {_age(ov.updated, now)}</span>
</header><main>
<section id="services"><h2>Services</h2>{_table(["Service", "State", "Ready", "Heartbeat", "Failing checks"],
                                                services, "No services expected", "services")}</section>
<section id="probe"><h2>Outside-in probe</h2>{probe_html}</section>
<section id="gpus"><h2>GPUs</h2>{gpu_html}</section>
<section id="models"><h2>Warm models</h2>{_table(["Pipeline", "Model", "Workers", "Gateways see"], models,
                                                 "No model is configured warm (-aiModels)", "models")}</section>
<section id="prices"><h2>Prices</h2>{price_html}</section>
<section id="payments"><h2>Payments and chain</h2>{_table(["", ""], pay_rows, "", "payments")}</section>
</main></body></html>"""


def overview_json(ov: Overview) -> dict[str, Any]:
    w = ov.winners
    return {
        "services": {n: {"up": s.up, "ready": s.ready} for n, s in ov.services.items()},
        "gpus": [g.__dict__ for g in ov.gpus],
        "nvml_error": ov.nvml_error,
        "models": [{"pipeline": m.pipeline, "model_id": m.model_id, "warm": m.warm} for m in ov.models],
        "probe": None if ov.probe is None else {
            "target": ov.probe.target, "state": ov.probe.state, "duration": ov.probe.duration,
            "at": ov.probe.at, "error": ov.probe.error,
            "models": [{"pipeline": m.pipeline, "model_id": m.model_id, "warm": m.warm,
                        "price_mismatch": m.price_mismatch} for m in ov.probe.models],
        },
        "winners": None if w is None else {"count": dict(w.count), "value_wei": {k: str(v) for k, v in w.value.items()},
                                           "oldest_pending_seconds": w.oldest_pending},
        "round": ov.round,
        "last_reward_round": ov.last_reward_round,
        "updated": ov.updated,
    }


def routes(overview: Callable[[], Overview], instance: Callable[[], str]) -> list[Any]:
    @get("/", media_type=MediaType.HTML, sync_to_thread=False)
    def page() -> str:
        """The operator status page."""
        return render_page(overview(), instance())

    @get("/api/overview", sync_to_thread=False)
    def api_overview() -> dict[str, Any]:
        """What the status page shows, as JSON."""
        return overview_json(overview())

    return [page, api_overview]
