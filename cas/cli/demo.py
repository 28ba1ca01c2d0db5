"""``cas demo``: a three-step pipeline run twice, to show what cas records.

ingest -> features -> train, on synthetic churn data in six monthly
partitions.  Between the two runs one partition is corrected, so the second
run shows content addressing at work: the unchanged partitions (and their
feature files) are stored once, and only the corrected bytes are new.  Then
the model is found by name, traced up to the raw data, the raw data traced
down to everything derived from it, and the runs listed.

Needs only the core dependencies (the model is a small logistic regression
in pure Python) and finishes in seconds.
"""

from __future__ import annotations

import csv
import io
import math
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from cas.core.units import human_bytes
from cas.store.facade import Store, open_store
from cas.version import ArtifactVersion

__all__ = ["demo", "run_demo", "DemoResult", "PIPELINE"]

PIPELINE = "churn"
MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06")
ROWS_PER_MONTH = 250
CORRECTED_MONTH = "2024-06"
EPOCHS, LEARNING_RATE, SEED = 80, 0.5, 7
PARAMS = {"epochs": EPOCHS, "learning_rate": LEARNING_RATE, "seed": SEED}


@dataclass
class DemoResult:
    store_url: str
    run_ids: list[str] = field(default_factory=list)
    created: list[tuple[str, int]] = field(default_factory=list)  # (ref, new bytes stored)
    logical_bytes: int = 0
    stored_bytes: int = 0

    @property
    def saved_bytes(self) -> int:
        return self.logical_bytes - self.stored_bytes


# -- the data and the three steps ----------------------------------------------------


def _write_partitions(root: Path, corrected: bool) -> None:
    """Synthetic customers: tenure (months), monthly charges, monthly contract -> churned."""
    rng = random.Random(20240601)
    for month in MONTHS:
        rows = []
        for i in range(ROWS_PER_MONTH):
            tenure = rng.randint(1, 72)
            charges = round(rng.uniform(18.0, 118.0), 2)
            monthly = int(rng.random() < 0.55)
            logit = -1.0 - 0.05 * tenure + 0.025 * charges + 1.4 * monthly
            churned = int(rng.random() < 1 / (1 + math.exp(-logit)))
            rows.append((f"{month}-{i:04d}", tenure, charges, monthly, churned))
        if corrected and month == CORRECTED_MONTH:
            # The late correction: the first 40 customers of the month were billed 10% too much.
            rows = [(cid, t, round(c * 0.9, 2) if n < 40 else c, m, y) for n, (cid, t, c, m, y) in enumerate(rows)]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("customer", "tenure", "monthly_charges", "monthly_contract", "churned"))
        w.writerows(rows)
        (root / f"{month}.csv").write_text(buf.getvalue())


def _features(raw_dir: Path, out_dir: Path) -> int:
    """One feature file per partition, scaled by fixed constants so a partition's
    features depend on that partition alone (unchanged input -> identical bytes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for part in sorted(raw_dir.glob("*.csv")):
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(("tenure_scaled", "charges_scaled", "monthly_contract", "churned"))
        with open(part, newline="") as f:
            for row in csv.DictReader(f):
                w.writerow((
                    f"{int(row['tenure']) / 72:.6f}",
                    f"{float(row['monthly_charges']) / 120:.6f}",
                    row["monthly_contract"],
                    row["churned"],
                ))
                n += 1
        (out_dir / part.name).write_text(out.getvalue())
    return n


def _train(features_dir: Path, epochs: int, learning_rate: float, seed: int) -> dict:
    """Logistic regression by batch gradient descent; returns weights and training accuracy."""
    xs: list[tuple[float, float, float]] = []
    ys: list[int] = []
    for part in sorted(features_dir.glob("*.csv")):
        with open(part, newline="") as f:
            for row in csv.DictReader(f):
                xs.append((float(row["tenure_scaled"]), float(row["charges_scaled"]), float(row["monthly_contract"])))
                ys.append(int(row["churned"]))
    rng = random.Random(seed)
    w = [rng.uniform(-0.01, 0.01) for _ in range(3)]
    b = 0.0
    n = len(xs)
    for _ in range(epochs):
        gw, gb = [0.0, 0.0, 0.0], 0.0
        for (x0, x1, x2), y in zip(xs, ys, strict=True):
            p = 1 / (1 + math.exp(-(w[0] * x0 + w[1] * x1 + w[2] * x2 + b)))
            err = p - y
            gw[0] += err * x0
            gw[1] += err * x1
            gw[2] += err * x2
            gb += err
        w = [wi - learning_rate * g / n for wi, g in zip(w, gw, strict=True)]
        b -= learning_rate * gb / n
    correct = sum(
        int((w[0] * x0 + w[1] * x1 + w[2] * x2 + b > 0) == bool(y)) for (x0, x1, x2), y in zip(xs, ys, strict=True)
    )
    return {
        "kind": "logistic_regression",
        "features": ["tenure_scaled", "charges_scaled", "monthly_contract"],
        "weights": [round(v, 6) for v in w],
        "bias": round(b, 6),
        "train_accuracy": round(correct / n, 4),
        "rows": n,
    }


def _pipeline(store: Store, raw_source: Path, scratch: Path, result: DemoResult, say: Callable[[str], None]) -> None:
    def saved(v: ArtifactVersion, before: int) -> None:
        new = max(store.stats().stored_bytes - before, 0)
        result.created.append((v.ref, new))
        say(f"   {v.ref:<28} {v.kind:<4} {human_bytes(v.size):>10}   {human_bytes(new):>10} new   {v.digest.short}")

    with store.run(PIPELINE, params=PARAMS) as run:
        result.run_ids.append(run.id)
        with run.step("ingest") as step:
            before = store.stats().stored_bytes
            raw = step.save(raw_source, "raw", metadata={"partitions": len(MONTHS)})
            saved(raw, before)
        with run.step("features") as step:
            raw_copy = step.load(raw.ref)  # a tree loads as a Path; this load is recorded as the step's input
            try:
                rows = _features(raw_copy, scratch / f"features-{len(result.run_ids)}")
            finally:
                shutil.rmtree(raw_copy.parent, ignore_errors=True)
            before = store.stats().stored_bytes
            features = step.save(scratch / f"features-{len(result.run_ids)}", "table", metadata={"rows": rows})
            saved(features, before)
        with run.step("train", inputs=[features]) as step:
            table = features.download(scratch / f"train-input-{len(result.run_ids)}")
            model = _train(table, EPOCHS, LEARNING_RATE, SEED)
            before = store.stats().stored_bytes
            model_v = step.save(model, "model", metadata={"train_accuracy": model["train_accuracy"]})
            saved(model_v, before)




def run_demo(store: Store, say: Callable[[str], None] = print) -> DemoResult:
    """Run the demo pipeline twice on ``store`` and print what cas recorded."""
    result = DemoResult(store_url=store.url)
    scratch = Path(tempfile.mkdtemp(prefix="cas-demo-work-"))
    try:
        raw_source = scratch / "raw"
        raw_source.mkdir()
        _write_partitions(raw_source, corrected=False)

        say(f"== 1. run 1 of pipeline {PIPELINE!r}: ingest -> features -> train "
            f"({len(MONTHS)} monthly partitions, {len(MONTHS) * ROWS_PER_MONTH} customers)")
        say(f"   {'version':<28} {'kind':<4} {'size':>10}   {'stored':>14}   digest")
        _pipeline(store, raw_source, scratch, result, say)

        _write_partitions(raw_source, corrected=True)
        say("")
        say(f"== 2. partition {CORRECTED_MONTH} corrected upstream; run 2, same code and params")
        say(f"   {'version':<28} {'kind':<4} {'size':>10}   {'stored':>14}   digest")
        _pipeline(store, raw_source, scratch, result, say)

        stats = store.stats()
        result.logical_bytes, result.stored_bytes = stats.logical_bytes, stats.stored_bytes
        say("")
        say("== 3. dedupe: each distinct content is stored once")
        say(f"   versions hold {human_bytes(stats.logical_bytes)}; the store keeps {human_bytes(stats.stored_bytes)} in "
            f"{stats.blobs} blobs: {human_bytes(result.saved_bytes)} saved ({stats.dedupe_ratio:.2f}x)")

        model = store.get_artifact_version(f"{PIPELINE}/train/model")
        producer = model.producer_step
        say("")
        say(f'== 4. store.get_artifact_version("{PIPELINE}/train/model")   (cas show {PIPELINE}/train/model)')
        say(f"   ref:          {model.ref}")
        say(f"   digest:       {model.digest}")
        say(f"   kind, size:   {model.kind}, {model.size} bytes, materializer {model.materializer!r}")
        say(f"   metadata:     {model.metadata}")
        if producer is not None:
            say(f"   produced by:  step {producer.step!r} of run {producer.run_id} ({producer.status})")
            say(f"   inputs:       {', '.join(v.ref for v in model.inputs)}")
        say(f"   load():       weights {model.load()['weights']}")

        say("")
        say(f"== 5. lineage up to the raw data   (cas lineage {PIPELINE}/train/model)")
        say(_indent(store.lineage(model, "up").to_text()))

        raw1 = store.get_artifact_version(result.created[0][0])  # run 1's raw data
        say("")
        say(f"== 6. what was derived from the uncorrected data   (cas lineage {raw1.ref} --down)")
        say(_indent(store.lineage(raw1, "down").to_text()))

        say("")
        say("== 7. runs   (cas run list)")
        for r in store.list_runs(PIPELINE):
            duration = f"{r.duration:.2f}s" if r.duration is not None else "-"
            say(f"   {r.id}  {r.pipeline}  {r.status:<9}  {len(r.steps)} steps  {duration:>7}  "
                f"{r.started_at.isoformat(timespec='seconds') if r.started_at else ''}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


# -- the `cas demo` command ---------------------------------------------------------


@click.command()
@click.option(
    "--store",
    "demo_store",
    default=None,
    metavar="URL",
    help="Store to run the demo in (default: a fresh temporary directory, kept afterwards).",
)
@click.pass_context
def demo(ctx: click.Context, demo_store: str | None) -> None:
    """Run a small pipeline twice and show versions, dedupe, lineage and runs.

    \b
    Examples:
      cas demo
      cas demo --store /tmp/cas-demo
    """
    root = ctx.find_root()
    if demo_store is None and root.get_parameter_source("store") == click.core.ParameterSource.COMMANDLINE:
        demo_store = root.params.get("store")  # `cas --store X demo` is as explicit as `cas demo --store X`
    location = demo_store or tempfile.mkdtemp(prefix="cas-demo-")
    store = open_store(location, create=True)
    ctx.call_on_close(store.close)
    click.echo(f"cas demo: store at {store.url}\n")
    run_demo(store, say=click.echo)
    click.echo(f"\nexplore it:  cas --store {location} lineage churn/train/model --format mermaid")
