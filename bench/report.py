"""The table printed at the end (results.json holds the same figures and more)."""
from __future__ import annotations

from typing import Any

from .stats import fmt_ms, table

CASES = ("raw_psycopg", "static", "dynamic_warm", "mysql_raw", "mysql_static", "rest_raw", "rest_static",
         "dynamic_cold", "python_step_trivial", "python_step_boto3", "sandbox_burst_8", "celery_noop", "end_to_end",
         "api_workflow_trivial", "api_query")


def render(results: dict[str, Any]) -> str:
    m, detail = results["machine"], results["detail"]
    out = [f"credtool bench · {m['date']} · {m['cpus_usable']} CPUs ({m['cpu_model'] or 'unknown'}) · "
           f"load {m['load_average']} · Python {m['python']} · broker {m['broker']} · app DB {m['app_database']} · "
           f"PostgreSQL {m['postgres']} · sandbox {m['sandbox']}, pool {m['sandbox_pool_size']}", ""]
    rows = [(name, fmt_ms(results[name]["p50_ms"]), fmt_ms(results[name]["p95_ms"]), str(results[name]["n"]))
            for name in CASES if name in results]
    rows += [(f"  ({name})", fmt_ms(v["p50_ms"]), fmt_ms(v["p95_ms"]), str(v["n"]))
             for name, v in detail.get("breakdown", {}).items()]
    if rows:
        out += [table(rows, ("case", "p50 ms", "p95 ms", "n")), ""]
    if "throughput_qps" in results:
        t = detail["throughput"]
        out.append(f"throughput_qps {results['throughput_qps']}  ·  celery_noop_qps {results['celery_noop_qps']}  "
                   f"({t['clients']} clients, {t['seconds']:g} s each)")
        e2e_cpu, noop_cpu = t.get("end_to_end_cpu_ms_per_query", {}), t.get("celery_noop_cpu_ms_per_task", {})
        if e2e_cpu:
            out.append(f"  CPU ms per query: web {e2e_cpu.get('web')}, worker {e2e_cpu.get('worker')}, "
                       f"bench client {e2e_cpu.get('bench')}, whole machine {e2e_cpu.get('machine')}; per no-op: "
                       f"worker {noop_cpu.get('worker')}, bench {noop_cpu.get('bench')}, "
                       f"machine {noop_cpu.get('machine')}")
        under = t.get("end_to_end_under_load")
        if under:
            conns = t.get("end_to_end_target_connections_opened") or {}
            out.append(f"  under load: end_to_end p50 {fmt_ms(under['p50_ms'])} ms, celery_noop p50 "
                       f"{fmt_ms((t.get('celery_noop_under_load') or {}).get('p50_ms'))} ms; new connections to the "
                       f"integration's database per query: {conns.get('per_query', '-')}")
    if "large_result" in results:
        large, more = results["large_result"], detail["large_result"]
        out.append(f"large_result: {large['table_rows']:,} rows -> {large['rows_kept']:,} kept in {large['wall_ms']} ms"
                   f" (worker path incl. storing the run: {large['execute_wall_ms']} ms), peak RSS "
                   f"+{large['peak_rss_mb']} MB, Python allocations peak {large['python_alloc_peak_mb']} MB")
        out.append(f"  cap 10,000: +{more['cap_10000']['peak_rss_growth_mb']} MB RSS, "
                   f"{more['cap_10000']['python_alloc_peak_mb']} MB allocations, {more['cap_10000']['wall_ms']} ms; "
                   f"whole table (fetchall, no cap): +{more['unbounded_fetchall']['peak_rss_growth_mb']} MB RSS, "
                   f"{more['unbounded_fetchall']['python_alloc_peak_mb']} MB allocations, "
                   f"{more['unbounded_fetchall']['wall_ms']} ms")
    hosts = results.get("multi_host")
    if hosts:
        if hosts.get("skipped"):
            out.append(f"multi_host: skipped ({hosts['skipped']})")
        else:
            d = detail.get("multi_host", {})
            out.append(f"multi_host ({d.get('processes')} processes, {d.get('integrations')} integrations, "
                       f"{d.get('queries_per_phase')} queries, TTL {d.get('credentials_cache_s')} s): GetSecretValue "
                       f"per-process {hosts['per_process_calls']}, shared {hosts['shared_calls']}; after rotating "
                       f"every secret: per-process {hosts['per_process_rotation_calls']}, shared "
                       f"{hosts['shared_rotation_calls']}; failed queries {hosts['failed_queries']} "
                       f"({d.get('runtime_s')} s)")
    pacing = detail.get("sandbox", {}).get("pacing")
    if pacing:
        out += ["", f"sandbox pool, trivial step (on a child started for it: {detail['sandbox']['cold_step_ms']} ms)"]
        rows = [(f"pool {r['pool_size']}, {r['pattern']}", fmt_ms(r["p50_ms"]), fmt_ms(r["p95_ms"]),
                 fmt_ms(r["max_ms"]), f"{r['cold_starts']}/{r['n']}") for r in pacing]
        burst = detail["sandbox"].get("burst_8")
        if burst:
            pool = f"pool {burst['pool_size']}-{burst['pool_max']}"
            for label, key in (("first burst of 8, never grown", "first_burst"),
                               ("sandbox_burst_8: bursts of 8, grown", "warmed")):
                r = burst[key]
                rows.append((f"{pool}, {label}", fmt_ms(r["p50_ms"]), fmt_ms(r["p95_ms"]), fmt_ms(r["max_ms"]),
                             f"{r['cold_starts']}/{r['n']}"))
        out.append(table(rows, ("pacing", "p50 ms", "p95 ms", "max ms", "cold")))
        if burst:
            idle = burst.get("idle_child") or {}
            starts = ", ".join(f"{r['starts_at_once']} at once {r['first_ready_ms']}/{r['all_ready_ms']} ms"
                               for r in detail["sandbox"].get("refill", []))
            out.append(f"  idle child: {idle.get('rss_mb', '-')} MB RSS, {idle.get('pss_mb', '-')} MB PSS; "
                       f"refill after a burst {burst['refill_s']} s ({burst['starts_at_once']} starts at once); "
                       f"filling 8 (first/all ready): {starts}")
    out += ["", table([(name, "-" if value is None else str(value)) for name, value in results["ratios"].items()],
                      ("ratio", "value"))]
    out += ["", table([(name, "-" if t["value"] is None else str(t["value"]),
                        "not measured" if t["met"] is None else "met" if t["met"] else "MISSED")
                       for name, t in results["targets"].items()], ("target", "value", ""))]
    return "\n".join(out)
