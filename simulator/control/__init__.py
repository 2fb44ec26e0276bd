"""The control room's other panels, backtested on recorded traffic: runaway sessions, alert rules, cost per
outcome and the leverage score, adoption. Pure functions of arrays and the canonical table returning plain dicts
for summary.json; time-ordered parts carry their state across chunks."""
