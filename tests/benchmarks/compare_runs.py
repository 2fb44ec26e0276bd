"""Compare two ``tfysim run`` output folders (before and after a speed change).

Every file byte for byte; a JSON file that differs is compared value by value, numbers within 1e-9 relative (a
float sum whose order changed), and each such value is listed. PNGs and report.html (which embeds them) are
skipped by default: ``--with-charts`` compares them too. Exit 0 when nothing differs beyond that.

Run: python tests/benchmarks/compare_runs.py BEFORE_DIR AFTER_DIR [--with-charts]
"""
import json, sys, math
from pathlib import Path

def walk(a, b, path, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b: diffs.append(f"{path}.{k}: only in one"); continue
            walk(a[k], b[k], f"{path}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b): diffs.append(f"{path}: length {len(a)} vs {len(b)}"); return
        for i, (x, y) in enumerate(zip(a, b)): walk(x, y, f"{path}[{i}]", diffs)
    elif isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and (a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(abs(a), abs(b))):
            if a != b: diffs.append(f"~{path}: {a!r} vs {b!r} (within 1e-9)")
        else: diffs.append(f"{path}: {a!r} vs {b!r}")
    elif a != b: diffs.append(f"{path}: {a!r} vs {b!r}")

def main(x, y):
    x, y = Path(x), Path(y)
    fx = {p.relative_to(x) for p in x.rglob("*") if p.is_file()}
    fy = {p.relative_to(y) for p in y.rglob("*") if p.is_file()}
    bad = 0
    for rel in sorted(fx ^ fy): print("ONLY IN ONE:", rel); bad += 1
    for rel in sorted(fx & fy):
        if not WITH_CHARTS and (rel.suffix == ".png" or rel.name == "report.html"):  # pixels may change
            continue
        a, b = (x / rel).read_bytes(), (y / rel).read_bytes()
        if a == b: continue
        if rel.suffix == ".json":
            diffs = []; walk(json.loads(a), json.loads(b), str(rel), diffs)
            hard = [d for d in diffs if not d.startswith("~")]
            print(f"{rel}: {'DIFFERS' if hard else 'within 1e-9'} ({len(diffs)} values)"); [print("   ", d) for d in diffs[:8]]
            bad += bool(hard)
        else:
            print(f"{rel}: DIFFERS"); bad += 1
            import difflib
            for l in list(difflib.unified_diff(a.decode(errors='replace').splitlines(), b.decode(errors='replace').splitlines(), lineterm='', n=0))[:12]: print("   ", l)
    print(f"{x} vs {y}: {len(fx & fy)} files, {'IDENTICAL' if not bad else str(bad) + ' differ'}")
    return bad

WITH_CHARTS = "--with-charts" in sys.argv

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--with-charts"]
    sys.exit(main(args[0], args[1]) > 0)
