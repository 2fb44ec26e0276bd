"""Write the control room's Prometheus alerting rules (from summary.json's ``alerts.prometheus``) into the run
folder as ``alerts/tfysim-alerts.rules.yml``; check them with ``promtool check rules``."""

from __future__ import annotations

from pathlib import Path

import yaml

RULES_FILE = "alerts/tfysim-alerts.rules.yml"


def alert_rules_text(summary: dict) -> str | None:
    alerts = summary.get("alerts")
    if not alerts or not alerts.get("prometheus"):
        return None
    header = [f"# tfysim: the control room's alert rules for scenario '{summary.get('scenario')}', over the gateway's "
              "OpenTelemetry/Prometheus metrics",
              "# check: promtool check rules <this file>; load: rule_files in prometheus.yml",
              "# backtest of each rule on the replayed traffic: summary.json alerts.backtest and report.md"]
    body = yaml.safe_dump(alerts["prometheus"], sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=120)
    return "\n".join(header) + "\n" + body


def write_alert_rules(result, folder: str | Path, include_prompts: bool = False) -> list[Path]:
    """Writer for :data:`simulator.outputs.writer.WRITERS`."""
    from simulator.outputs.files import write_text

    path = Path(folder) / RULES_FILE
    text = alert_rules_text(result.summary)
    if text is None:
        path.unlink(missing_ok=True)
        return []
    return [write_text(path, text)]
