#!/usr/bin/env python3
"""Load-test helper (benches/load only): parses wrk output and prints the result tables.

  report.py parse WRK_OUTPUT_FILE   -> one tab-separated line:
        rps  p50_us  p99_us  non2xx  socket_errors  requests  seconds  mib_read  lua
  report.py table RESULTS_DIR       -> Markdown tables (medians over rounds) on stdout

RESULTS_DIR holds results.tsv (one row per wrk run, written by run.sh), notes.tsv
(scenario, key, value), meta.tsv (key, value) and, after scenario (m), mem-samples.tsv
(seconds, VmRSS kB, VmHWM kB). Standard library only.
"""

import re
import statistics
import sys
from collections import OrderedDict, defaultdict

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(path):
    text = open(path, errors="replace").read()

    def grab(pattern, default="0"):
        m = re.search(pattern, text, re.M)
        return m.group(1) if m else default

    rps = float(grab(r"^Requests/sec:\s+([\d.]+)", "0"))
    p50 = to_us(grab(r"^\s+50%\s+(\S+)", "nan"))
    p99 = to_us(grab(r"^\s+99%\s+(\S+)", "nan"))
    non2xx = int(grab(r"Non-2xx or 3xx responses:\s+(\d+)", "0"))
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errs = sum(int(x) for x in m.groups())
    m = re.search(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB) read", text, re.M)
    requests, secs, mib = 0, 0.0, 0.0
    if m:
        requests = int(m.group(1))
        secs = to_us(m.group(2) + m.group(3)) / 1e6
        mib = float(m.group(4)) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(5)]
    lua = grab(r"^LUA (.*)$", "-").strip().replace("\t", " ")
    print("\t".join(str(x) for x in (rps, p50, p99, non2xx, errs, requests, secs, mib, lua)))


def fmt_us(us):
    if us != us:  # NaN
        return "-"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_rps(x):
    return f"{x:,.0f}"


def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def load(results_dir):
    rows = []
    with open(f"{results_dir}/results.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rec = dict(zip(header, line.rstrip("\n").split("\t")))
            for k in ("rps", "p50_us", "p99_us", "proxy_cpu_s", "emu_cpu_s", "up_cpu_s", "secs",
                      "mib_read", "upload_mib", "other_cores"):
                rec[k] = float(rec.get(k) or "nan")
            for k in ("round", "non2xx", "errors", "requests"):
                rec[k] = int(float(rec.get(k) or 0))
            rows.append(rec)
    notes = defaultdict(OrderedDict)
    try:
        with open(f"{results_dir}/notes.tsv") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t", 2)
                if len(parts) == 3:
                    notes[parts[0]][parts[1]] = parts[2]
    except FileNotFoundError:
        pass
    meta = OrderedDict()
    try:
        with open(f"{results_dir}/meta.tsv") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                meta[k] = v
    except FileNotFoundError:
        pass
    return rows, notes, meta


def summarize(rows):
    """target -> aggregated dict, in first-seen order."""
    by = OrderedDict()
    for r in rows:
        by.setdefault(r["target"], []).append(r)
    out = OrderedDict()
    for target, rs in by.items():
        reqs = sum(r["requests"] for r in rs)
        cpu = sum(r["proxy_cpu_s"] for r in rs if r["proxy_cpu_s"] == r["proxy_cpu_s"])
        emu = sum(r["emu_cpu_s"] for r in rs if r["emu_cpu_s"] == r["emu_cpu_s"])
        up = sum(r["up_cpu_s"] for r in rs if r["up_cpu_s"] == r["up_cpu_s"])
        secs = sum(r["secs"] for r in rs) or float("nan")
        has_proxy = any(r["proxy_cpu_s"] == r["proxy_cpu_s"] for r in rs)
        out[target] = {
            "rounds": len(rs),
            "rps": med([r["rps"] for r in rs]),
            "rps_min": min(r["rps"] for r in rs),
            "rps_max": max(r["rps"] for r in rs),
            "p50": med([r["p50_us"] for r in rs]),
            "p99": med([r["p99_us"] for r in rs]),
            "non2xx": sum(r["non2xx"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "requests": reqs,
            "proxy_cores": cpu / secs if has_proxy else float("nan"),
            "proxy_us_req": cpu * 1e6 / reqs if has_proxy and reqs else float("nan"),
            "emu_cores": emu / secs,
            "up_cores": up / secs,
            "mib_s": med([r["upload_mib"] * r["rps"] for r in rs]),
            "other": max(r["other_cores"] for r in rs),
            "lua": "; ".join(sorted({r["lua"] for r in rs if r["lua"] not in ("", "-")})),
        }
    return out


def ratio(a, b):
    return f"{a / b:.2f}×" if b and b == b and a == a else "-"


def cores(x):
    return "-" if x != x else f"{x:.2f}"


def usreq(x):
    return "-" if x != x else f"{x:.1f}"


LABELS = {
    "direct": "direct upstream (nginx `return 200`)",
    "nginx-plain": "nginx plain (`proxy_pass`, keepalive)",
    "nginx-plain-1m": "nginx plain, `client_body_buffer_size 1m`",
    "nginx-njs": "nginx+njs (`auth_request` + Authlete introspection, 10 s cache)",
    "tokengate": "tokengate",
    "tokengate-bearer": "tokengate, Bearer (one token)",
    "tokengate-dpop": "tokengate, DPoP (one bound token, fresh proof per request)",
    "tokengate-cold": "tokengate, fresh process, 10,000 unseen tokens",
    "tokengate-soak": "tokengate, cached tokens cycled (memory soak)",
}

TITLES = {
    "a": "(a) one Bearer token, warm cache",
    "b": "(b) 10,000 distinct Bearer tokens cycled, warm",
    "c": "(c) cold start: 10,000 distinct tokens against a freshly started tokengate",
    "d": "(d) DPoP: single-use proofs vs Bearer",
    "e": "(e) 24 MiB uploads streamed through the proxy",
    "m": "(m) memory: many distinct tokens cached in a fresh tokengate, then a bounded load",
}


def mem_samples(results_dir):
    """(seconds, VmRSS kB, VmHWM kB) rows sampled during the (m) soak."""
    out = []
    try:
        with open(f"{results_dir}/mem-samples.tsv") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    out.append(tuple(int(x) for x in parts))
    except (FileNotFoundError, ValueError):
        pass
    return out


def table(results_dir):
    rows, notes, meta = load(results_dir)
    scen_rows = OrderedDict()
    for r in rows:
        scen_rows.setdefault(r["scenario"], []).append(r)
    if "m" in notes:  # (m) reports even if its soak never recorded a row
        scen_rows.setdefault("m", [])
    w = sys.stdout.write
    rounds = max((r["round"] for r in rows), default=0)
    if meta:
        w("Run parameters: " + ", ".join(f"{k} = {v}" for k, v in meta.items()) + "\n\n")
    for scen, rs in scen_rows.items():
        s = summarize(rs)
        w(f"### {TITLES.get(scen, scen)}\n\n")
        if scen in ("a", "b"):
            base_plain = s.get("nginx-plain", {}).get("rps")
            base_direct = s.get("direct", {}).get("rps")
            w("| target | req/s (median) | req/s min–max | p50 | p99 | non-2xx | socket errors "
              "| vs nginx plain | vs direct | proxy CPU (cores) | proxy CPU µs/req | emulator CPU (cores) | other processes' CPU, max (cores) |\n")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for t, a in s.items():
                w(f"| {LABELS.get(t, t)} | {fmt_rps(a['rps'])} | {fmt_rps(a['rps_min'])}–{fmt_rps(a['rps_max'])} "
                  f"| {fmt_us(a['p50'])} | {fmt_us(a['p99'])} | {a['non2xx']} | {a['errors']} "
                  f"| {ratio(a['rps'], base_plain)} | {ratio(a['rps'], base_direct)} "
                  f"| {cores(a['proxy_cores'])} | {usreq(a['proxy_us_req'])} | {cores(a['emu_cores'])} | {cores(a['other'])} |\n")
        elif scen == "c":
            w("| target | req/s | p50 | p99 | non-2xx | socket errors | proxy CPU µs/req | emulator CPU (cores) | other processes' CPU (cores) |\n")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for t, a in s.items():
                w(f"| {LABELS.get(t, t)} | {fmt_rps(a['rps'])} | {fmt_us(a['p50'])} | {fmt_us(a['p99'])} "
                  f"| {a['non2xx']} | {a['errors']} | {usreq(a['proxy_us_req'])} | {cores(a['emu_cores'])} | {cores(a['other'])} |\n")
        elif scen == "d":
            bearer = s.get("tokengate-bearer", {}).get("rps")
            w("| target | req/s (median) | req/s min–max | p50 | p99 | non-2xx | socket errors "
              "| vs tokengate Bearer | proxy CPU (cores) | proxy CPU µs/req | other processes' CPU, max (cores) |\n")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for t, a in s.items():
                w(f"| {LABELS.get(t, t)} | {fmt_rps(a['rps'])} | {fmt_rps(a['rps_min'])}–{fmt_rps(a['rps_max'])} "
                  f"| {fmt_us(a['p50'])} | {fmt_us(a['p99'])} | {a['non2xx']} | {a['errors']} "
                  f"| {ratio(a['rps'], bearer)} | {cores(a['proxy_cores'])} | {usreq(a['proxy_us_req'])} | {cores(a['other'])} |\n")
        elif scen == "e":
            base_plain = s.get("nginx-plain", {}).get("mib_s")
            base_direct = s.get("direct", {}).get("mib_s")
            w("| target | uploads/s (median) | MiB/s (median) | p50 | p99 | non-2xx | socket errors "
              "| vs nginx plain | vs direct | proxy CPU (cores) | proxy CPU ms/upload | other processes' CPU, max (cores) |\n")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            for t, a in s.items():
                per = a["proxy_us_req"] / 1000 if a["proxy_us_req"] == a["proxy_us_req"] else float("nan")
                w(f"| {LABELS.get(t, t)} | {a['rps']:.1f} | {a['mib_s']:.0f} | {fmt_us(a['p50'])} "
                  f"| {fmt_us(a['p99'])} | {a['non2xx']} | {a['errors']} "
                  f"| {ratio(a['mib_s'], base_plain)} | {ratio(a['mib_s'], base_direct)} "
                  f"| {cores(a['proxy_cores'])} | {usreq(per)} | {cores(a['other'])} |\n")
        elif scen == "m":
            if s:
                w("| target | req/s | p50 | p99 | non-2xx | socket errors | proxy CPU (cores) | proxy CPU µs/req | other processes' CPU (cores) |\n")
                w("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
                for t, a in s.items():
                    w(f"| {LABELS.get(t, t)} | {fmt_rps(a['rps'])} | {fmt_us(a['p50'])} | {fmt_us(a['p99'])} "
                      f"| {a['non2xx']} | {a['errors']} | {cores(a['proxy_cores'])} | {usreq(a['proxy_us_req'])} | {cores(a['other'])} |\n")
                w("\n")
            samples = mem_samples(results_dir)
            if samples:
                first = samples[0][1]
                w("| soak time | VmRSS | vs first sample | VmHWM |\n")
                w("|---:|---:|---:|---:|\n")
                for secs, rss, hwm in samples:
                    w(f"| {secs} s | {rss:,} kB ({rss / 1024:.1f} MiB) | {rss - first:+,} kB | {hwm:,} kB |\n")
        extra = notes.get(scen)
        if extra:
            w("\n")
            for k, v in extra.items():
                w(f"- {k}: {v}\n")
        w("\n")
    if rounds:
        w(f"Medians over {rounds} round(s); p50/p99 are the medians of the rounds' wrk `--latency` "
          "percentiles. `non-2xx` is wrk's \"Non-2xx or 3xx responses\" (status ≥ 400; no target "
          "answers 3xx). CPU columns: user+system time of the proxy process (nginx worker or "
          "tokengate, all threads) and of the Authlete emulator during the runs, divided by wall "
          "time (1.00 = one core busy). \"Other processes' CPU\" is what the rest of the machine "
          "(not this harness, not wrk) used during the run, from /proc/stat: above ~0.1 the run "
          "was disturbed.\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "parse":
        parse(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
