"""Every bash and Python example of README.md's guides runs as written, in order, against a real
`sluicegate serve` and the local stack, so the docs cannot rot. (```console blocks show
what the harness does itself: starting the stack and the server, Docker.)"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from sluicegate.demo import reset
from sluicegate.demo.server import start_serve

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```$", re.S | re.M)


def readme_script() -> str:
    """The README's examples as one bash script: Python blocks run through the venv's
    interpreter, with the variables the bash blocks exported."""
    parts = ["set -euo pipefail"]
    guides = (ROOT / "README.md").read_text().split("## Guides", 1)[1]
    for kind, body in BLOCK.findall(guides):
        parts.append(body if kind == "bash" else f"python - <<'README_PY'\n{body}README_PY")
    return "\n".join(parts)


def test_readme_has_examples_for_every_user_group() -> None:
    script = readme_script()
    for needle in (
        "/subjects/",
        "/v1/events/",
        "cdc apply",
        "features apply",
        "training-set",
        "SchemaRegistryClient",
        "SluicegateClient",
    ):
        assert needle in script, needle


def test_readme_examples_run_as_written(stack, tmp_path: Path) -> None:
    super_dsn = f"host={stack.pg_host} port={stack.pg_port} dbname={stack.pg_db} user=postgres"

    def clean() -> None:
        reset.reset(
            stack.connect_url,
            stack.kafka_bootstrap,
            super_dsn,
            tmp_path / "sg",
            cdc_name="accounts",
            subject_prefixes=("shop.",),
        )
        subprocess.run(
            [
                "psql",
                f"postgresql://{stack.pg_user}:{stack.pg_password}@{stack.pg_host}:{stack.pg_port}/{stack.pg_db}",
                "-qc",
                "DROP TABLE IF EXISTS accounts",
            ],
            check=True,
            capture_output=True,
        )

    clean()
    server = start_serve(
        tmp_path / "sg",
        ready_path="/readyz",
        extra_env={
            "SLUICEGATE_CDC_CONFIG_DIR": str(ROOT / "examples" / "quickstart" / "cdc"),
            "ACCOUNTS_DB_PASSWORD": stack.pg_password,
            "SLUICEGATE_MATERIALIZE_TOPICS": r"^sg\.(shop|cdc\.accounts)\..*",
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    for name in ("examples", ".venv"):
        (work / name).symlink_to(ROOT / name)
    try:
        env = {**server.env, "SG": server.url, "TOKEN": server.admin_token}
        env.pop("VIRTUAL_ENV", None)
        run = subprocess.run(
            ["bash", "-c", readme_script()],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,  # the assertion below shows the output
        )
        assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
        out = run.stdout
        # what the examples promise, visible in their output
        assert '"version":2' in out.replace(" ", "") or '"version": 2' in out
        assert "shop.refund id" in out
        assert "10 posted" in out
        assert "user_orders_7d" in out and "user_spend" in out
        assert "SELECT" in out  # --print-sql
        assert (work / "churn.parquet").stat().st_size > 0
        assert "violations" in out  # the invalid event's answer
        # the check before a change: the stored events read as it, two features break
        assert "stored events read as version 3 of shop.order_placed" in out, out[-3000:]
        assert "feature user_spend@1 (team ml-growth) reads amount: BREAKS" in out
        assert "exit 1: not safe to register" in out
        assert '"error_code":40903' in out.replace(" ", "")
        assert os.path.exists(work / "churn.report.json") or "report" in out
    finally:
        server.cli("cdc", "delete", "accounts", "--drop-slot", check=False)
        server.stop()
        clean()
