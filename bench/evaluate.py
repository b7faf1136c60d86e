"""`make eval`: an evaluation run through the mesh's admin API, its matrix
printed and its report written as JSON and HTML.

    python -m bench.evaluate [--models offline,gpt-4o-mini] [--customers 40] [--questions 320]
                              [--gateway https://127.0.0.1:8080 --admin-key sk-admin-...] [--out build/eval]

Without --gateway it starts the mesh on free ports in its own data folder
(the sample store of 1,000 customers, no keys needed) and stops it after.
Customers are drawn at random from the sample store by e-mail; the
optimizer reads their records and builds the questions itself.
"""

from __future__ import annotations

import argparse
import json
import random
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import load_topology
from services.tilores_data.sample import generate_customers

SAMPLE_CUSTOMERS = 1000
FIGURES = (("precision", "P"), ("recall", "R"), ("refusal_accuracy", "refusal"), ("quality", "quality"))


def _call(method: str, url: str, key: str, body: dict | None = None, context=None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def pick_customers(count: int, seed: int) -> list[str]:
    """E-mails of `count` random customers of the sample store."""
    emails = [c.records[0]["EMAIL"] for c in generate_customers(SAMPLE_CUSTOMERS)]
    return random.Random(seed).sample(emails, min(count, len(emails)))


def _percent(value: float | None) -> str:
    return "   –  " if value is None else f"{value:6.1%}"


def print_matrix(run: dict, out=sys.stdout) -> None:
    cells = run["cells"]
    spectrums = list(dict.fromkeys(c["spectrum"] for c in cells))
    for model in run["models"]:
        print(f"\n{model}", file=out)
        print(f"  {'spectrum':<24}{'n':>5} {'precision':>10} {'recall':>8} {'refusal':>8} {'quality':>8}"
              f" {'TTFT p50':>9} {'total p50':>10} {'tokens':>8} {'cost $':>9}", file=out)  # fmt: skip
        for spectrum in spectrums:
            c = next(x for x in cells if x["model"] == model and x["spectrum"] == spectrum)
            quality = "   –" if c.get("quality") is None else f"{c['quality']:.3f}"
            print(
                f"  {spectrum:<24}{c['questions']:>5} {_percent(c.get('precision')):>10} "
                f"{_percent(c.get('recall')):>8} {_percent(c['refusal_accuracy']):>8} {quality:>8} "
                f"{c['ttft_p50_ms']:>7.0f}ms {c['total_p50_ms']:>8.0f}ms {c['tokens']:>8} {c['cost_usd']:>9.4f}",
                file=out,
            )


def run_evaluation(
    url: str, key: str, models: list[str], customers: list[str], questions: int, note: str, context=None
) -> dict:
    status, body = _call(
        "POST",
        f"{url}/v1/evaluations",
        key,
        {"models": models, "customers": customers, "questions": questions, "note": note},
        context,
    )
    if status != 202:
        raise SystemExit(f"starting the run failed: HTTP {status} {body.decode()}")
    run = json.loads(body)["run"]
    last = -1
    while True:
        status, body = _call("GET", f"{url}/v1/evaluations/{run['id']}", key, context=context)
        if status != 200:
            raise SystemExit(f"reading the run failed: HTTP {status} {body.decode()}")
        answer = json.loads(body)
        run = answer["run"]
        if run["done"] != last:
            print(f"  {run['id']}: {run['done']}/{run['total']} answers graded", flush=True)
            last = run["done"]
        if run["state"] != "running":
            return answer
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="offline", help="catalog model ids, comma-separated")
    parser.add_argument("--customers", type=int, default=40, help="customers drawn from the sample store")
    parser.add_argument("--questions", type=int, default=320)
    parser.add_argument("--seed", type=int, default=7, help="which customers are drawn")
    parser.add_argument("--gateway", default="", help="a running mesh's REST address (default: start one)")
    parser.add_argument("--admin-key", default="", help="an admin key of that mesh")
    parser.add_argument("--data-dir", default=".data/eval", help="the started mesh's data folder")
    parser.add_argument("--out", default="build/eval", help="where the report files go")
    parser.add_argument("--note", default="", help="shown at the top of the report")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    customers = pick_customers(args.customers, args.seed)
    mesh = None
    started = time.monotonic()
    if args.gateway:
        url, key, context = args.gateway.rstrip("/"), args.admin_key, ssl.create_default_context()
    else:
        print(f"starting the mesh in {args.data_dir} ...", flush=True)
        mesh = LocalMesh(
            load_topology("deploy/topology.yaml"),
            args.data_dir,
            free_ports=True,
            env={"SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS), "QUALITY_CHECK_INTERVAL_S": "0"},
            key_limits=UNMETERED_KEY_LIMITS,
            progress=print,
        )
        mesh.start()
        url, key, context = mesh.rest_url, mesh.admin_key, None
    try:
        began = time.monotonic()
        print(f"evaluating {', '.join(models)} on {args.questions} questions about {len(customers)} customers")
        answer = run_evaluation(url, key, models, customers, args.questions, args.note, context)
        elapsed = time.monotonic() - began
        run = answer["run"]
        if run["state"] != "succeeded":
            print(f"the run failed: {run.get('error', '')}", file=sys.stderr)
            return 1
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{run['id']}.json").write_text(json.dumps(answer["report"], indent=2))
        status, html = _call("GET", f"{url}/v1/evaluations/{run['id']}/report.html", key, context=context)
        if status == 200:
            (out / f"{run['id']}.html").write_bytes(html)
        print_matrix(run)
        cost = sum(c["cost_usd"] for c in run["cells"] if c["spectrum"] == "all")
        print(f"\nrun {run['id']}: {elapsed:.1f} s for {run['total']} answers, cost ${cost:.4f}")
        print(f"report: {out / (run['id'] + '.json')} and {out / (run['id'] + '.html')}")
        print(f"(with the mesh's start: {time.monotonic() - started:.1f} s)")
    finally:
        if mesh is not None:
            mesh.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
