"""With `PROMETHEUS_MULTIPROC_DIR` set (the `--workers N` set-up), `/metrics` answers
with the sum over every worker process, not the one the scrape happened to reach.

prometheus_client reads the variable when first imported, so each "worker" is a
child interpreter started with it in the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from .inprocess import sample

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    from turnstream.server.metrics import ServerMetrics

    metrics = ServerMetrics()
    metrics.requests.labels("/v1/responses", "POST", "200").inc()
    metrics.output_tokens.labels("echo").inc(5)
    """
)

SCRAPE = textwrap.dedent(
    """
    import sys
    from turnstream.server.metrics import ServerMetrics

    sys.stdout.write(ServerMetrics().exposition().decode())
    """
)


def run(code: str, multiproc_dir: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_are_summed_over_worker_processes(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    run(WORKER, shared)
    run(WORKER, shared)
    text = run(SCRAPE, shared)
    assert sample(text, "turnstream_http_requests_total", route="/v1/responses", status="200") == 2
    assert sample(text, "turnstream_output_tokens_total", model="echo") == 10


def test_a_worker_that_exited_no_longer_counts_in_the_live_gauges(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    # a worker that exits with two streams open (killed, say): they closed with it
    run(
        "from turnstream.server.metrics import ServerMetrics\n"
        "metrics = ServerMetrics()\n"
        "metrics.open_streams.inc(2)\n"
        "metrics.requests.labels('/v1/responses', 'POST', '200').inc()\n",
        shared,
    )
    # the scraped worker is alive and has one stream open
    text = run(
        "import sys\n"
        "from turnstream.server.metrics import ServerMetrics\n"
        "metrics = ServerMetrics()\n"
        "metrics.open_streams.inc()\n"
        "sys.stdout.write(metrics.exposition().decode())\n",
        shared,
    )
    assert sample(text, "turnstream_open_streams") == 1
    # what the exited worker counted still counts
    assert sample(text, "turnstream_http_requests_total", route="/v1/responses", status="200") == 1
