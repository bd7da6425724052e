"""Turns one scripts/bench run folder into Markdown tables (stdout): per Gotthard backend, every
row side by side with the peer, the ratio of requests/s, and the machine's limits.
  python3 summarize.py target/bench/<run>"""
import json
import re
import sys
from pathlib import Path

run = Path(sys.argv[1])
settings = json.loads((run / "settings.json").read_text())

ROWS = [
    ("baseline", "machine ceiling: bare handler returning the JWKS bytes (axum / node:http)",
     "baseline"),
    ("discovery", "GET discovery", "discovery"),
    ("jwks", "GET JWKS", "jwks"),
    ("token_client_credentials", "POST token, client_credentials (JWT ES256 on both)",
     "token_client_credentials"),
    ("token_client_credentials", "… peer with an opaque (stored) token instead",
     "token_client_credentials_opaque"),
    ("token_refresh", "POST token, refresh_token (Gotthard rotates; peer reuses one token)",
     "token_refresh"),
    ("introspection", "POST introspection (user's access token)", "introspection"),
    ("userinfo", "GET userinfo (bearer)", "userinfo"),
    ("login", "POST password login (argon2id m=19456,t=2,p=1)", "login"),
]


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bad(r):
    e = r["errors"]
    return e["status_4xx_5xx"] + e["body_mismatch"]


def ok_rps(r):
    return r["rps"] * (1 - bad(r) / max(1, r["requests"]))


def errors(r):
    e = r["errors"]
    parts = []
    if e["status_4xx_5xx"]:
        parts.append(f'{e["status_4xx_5xx"]} 4xx/5xx')
    if e["body_mismatch"]:
        parts.append(f'{e["body_mismatch"]} wrong body')
    sockets = e["connect"] + e["read"] + e["write"] + e["timeout"]
    if sockets:
        parts.append(f"{sockets} socket/timeout")
    return f'{", ".join(parts)} of {r["requests"]}' if parts else "0"


def cells(r):
    if r is None:
        return ["–", "–", "–", "not run"]
    if "skipped" in r:
        return ["–", "–", "–", f'skipped: {r["skipped"]}']
    rps = f'{r["rps"]:.0f}' if not bad(r) else f'{r["rps"]:.0f} ({ok_rps(r):.0f} ok/s)'
    return [rps, f'{r["p50_ms"]:.2f}', f'{r["p99_ms"]:.2f}', errors(r)]


def cpu_us(d, name, r):
    """Server CPU time per answered request (µs), and the kernel's share of it: a figure that
    the load generator's share of the same cores distorts less than requests/s."""
    c = load(d / f"{name}.cpu.json")
    if not c or not usable(r) or not r["rps"]:
        return "–"
    total = f'{c["server_cpu_pct"] / 100 / r["rps"] * 1e6:.0f}'
    if c.get("server_cpu_pct") and "server_sys_pct" in c:
        total += f' ({c["server_sys_pct"] * 100 / c["server_cpu_pct"]:.0f} % sys)'
    return total


def usable(r):
    return r is not None and "skipped" not in r and r.get("requests")


peer_dir = run / "peer"
mib = lambda kib: f"{int(kib) / 1024:.0f} MiB" if kib else "?"


def memory(d):
    text = (d / "memory.txt").read_text() if (d / "memory.txt").exists() else ""
    return dict(line.split("=", 1) for line in text.split() if "=" in line)


out = []
out.append(
    f'{settings["cores"]} cores ({settings["cpu"]}), {int(settings["mem_kib"]) / 2**20:.0f} GiB; '
    f'{settings["wrk"]} -t{settings["threads"]} -c{settings["connections"]} '
    f'-d{settings["duration"]}s after a {settings["warmup"]} s warm-up, loopback; load generator and '
    f'servers share the cores. Peer: oidc-provider on Node {settings["node"]}. Commit {settings["commit"]}.'
)


def argon2(d):
    """The argon2-limit example's line (key=value pairs) measured before d's login row."""
    f = d / "argon2_limit.txt"
    return dict(re.findall(r"(\w+)=([\w.,]+)", f.read_text())) if f.exists() else {}


peer_argon = load(peer_dir / "argon2_limit.json")

for backend in ["sqlite", "postgres"]:
    d = run / backend
    if not d.is_dir():
        continue
    title = "SQLite" if backend == "sqlite" else "PostgreSQL + Redis"
    out.append("")
    out.append(f"### Gotthard on {title} vs. the peer")
    out.append("")
    out.append("| endpoint | Gotthard req/s | p50 ms | p99 ms | errors | CPU µs/req | peer req/s | p50 ms | p99 ms | errors | CPU µs/req | ratio req/s | p99 lower |")
    out.append("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | :---: |")
    for g_name, label, p_name in ROWS:
        g = load(d / f"{g_name}.json")
        p = load(peer_dir / f"{p_name}.json")
        if g is None and p is None:
            continue
        ratio = lower = ""
        if usable(g) and usable(p) and ok_rps(p) > 0:
            ratio = f"{ok_rps(g) / ok_rps(p):.2f}×"
            lower = "yes" if g["p99_ms"] < p["p99_ms"] else "no"
        if p_name == "token_client_credentials_opaque":
            g_cells = ["″"] * 5
        else:
            g_cells = [*cells(g), cpu_us(d, g_name, g)]
        p_cells = [*cells(p), cpu_us(peer_dir, p_name, p)]
        out.append("| " + " | ".join([label, *g_cells, *p_cells, ratio, lower]) + " |")

    notes = []
    base = load(d / "baseline.json")
    for name in ["discovery", "jwks"]:
        r = load(d / f"{name}.json")
        if usable(base) and usable(r):
            notes.append(f"{name} = {100 * ok_rps(r) / ok_rps(base):.0f} % of the bare axum handler")
    refresh, signs = load(d / "token_refresh.json"), load(d / "sign_limit.json")
    if usable(refresh) and signs and signs.get("RS256"):
        rs256 = signs["RS256"]["signs_per_s"]
        notes.append(
            f"refreshes = {100 * ok_rps(refresh) / rs256:.0f} % of the RS256 signing limit "
            f"({rs256:.0f} signs/s on all cores, measured right before the row; each refresh "
            "signs an RS256 ID token and an ES256 access token)"
        )
    login = load(d / "login.json")
    limit = float(argon2(d).get("all_cores_measured_per_s", 0) or 0)
    ideal = float(argon2(d).get("limit_per_s", 0) or 0)
    if limit and usable(login):
        notes.append(
            f"logins = {100 * ok_rps(login) / limit:.0f} % of the argon2id limit measured on all cores "
            f"({100 * ok_rps(login) / ideal:.0f} % of cores ÷ one verify)"
        )
    if peer_argon and usable(load(peer_dir / "login.json")):
        notes.append(
            f'peer logins = {100 * ok_rps(load(peer_dir / "login.json")) / peer_argon["verifies_per_s"]:.0f} % '
            "of node-argon2's limit"
        )
    if notes:
        out.append("")
        out.append("Within this run: " + "; ".join(notes) + ".")

    probes = [(n, load(d / f"under_load.{n}.json"), load(peer_dir / f"under_load.{n}.json"))
              for n in ["jwks", "introspection", "userinfo"]]
    if any(g for _, g, _ in probes):
        gl, pl = load(d / "under_load.login.json"), load(peer_dir / "under_load.login.json")
        out.append("")
        out.append(
            "While logins saturate the CPU "
            f'(Gotthard {ok_rps(gl):.0f} logins/s, peer {ok_rps(pl):.0f} logins/s'
            if usable(gl) and usable(pl) else "While logins saturate the CPU ("
        )
        out[-1] += f", {settings['connections']} connections): 50 requests/s on one connection to each of"
        out[-1] += " JWKS, introspection and userinfo:"
        out.append("")
        out.append("| probe under login load | Gotthard p50 ms | p99 ms | max ms | wrong | peer p50 ms | p99 ms | max ms | wrong |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, g, p in probes:
            row = [name]
            for r in (g, p):
                row += ([f'{r["p50_ms"]:.2f}', f'{r["p99_ms"]:.2f}', f'{r["max_ms"]:.2f}', str(r["wrong"])]
                        if r and r.get("probes") else ["–"] * 4)
            out.append("| " + " | ".join(row) + " |")

    m, pm = memory(d), memory(peer_dir)
    out.append("")
    out.append(
        f'Resident memory: Gotthard idle {mib(m.get("idle_rss_kib"))}, peak {mib(m.get("peak_rss_kib"))}; '
        f'peer idle {mib(pm.get("idle_rss_kib"))}, peak {mib(pm.get("peak_rss_kib"))}.'
    )
    if (d / "rss.txt").exists():
        steps = [line.split() for line in (d / "rss.txt").read_text().splitlines() if len(line.split()) == 3]
        out.append(
            "Gotthard after each row, resident / high-water mark: "
            + ", ".join(f"{n} {mib(r)} / {mib(h)}" for n, r, h in steps)
            + "."
        )

out.append("")
out.append("### The machine in this run")
out.append("")
for backend in ["sqlite", "postgres"]:
    a = argon2(run / backend)
    if a:
        out.append(
            f'- argon2id {a.get("params")} (Rust `argon2`, Gotthard\'s parameters), before the {backend} '
            f'login row: one verify {a.get("one_verify_ms")} ms; all {a.get("cores")} cores: '
            f'{a.get("all_cores_measured_per_s")} verifies/s measured '
            f'({a.get("limit_per_s")}/s = cores ÷ one verify).'
        )
if peer_argon:
    out.append(
        f'- node argon2 (the peer\'s), {peer_argon["in_flight"]} in flight: {peer_argon["verifies_per_s"]} verifies/s.'
    )
sign = load(run / "sign_limit.json")
if sign:
    parts = [f'{alg} {v["signs_per_s"]:.0f} signs/s, {v["verifies_per_s"]:.0f} verifies/s'
             for alg, v in sign.items() if isinstance(v, dict)]
    out.append(f'- JWT on all {sign["cores"]} cores (Gotthard\'s keys, aws-lc-rs): ' + "; ".join(parts) + ".")
print("\n".join(out))
