"""Runs a suite on a frame with Great Expectations 1.x; optionally writes Data Docs.

Results never carry values: unexpected values are not collected (``partial_unexpected_count=0``),
so neither the summary nor the Data Docs copy personal data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str
    unexpected_count: int
    unexpected_percent: float
    why: str


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    rows: int
    evaluated: int
    failures: tuple[Failure, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "evaluated": self.evaluated,
            "failures": [f.__dict__ for f in self.failures],
        }


class SuiteValidator:
    """One suite made ready once (Great Expectations' context, suite, data asset and checkpoint),
    then run on frame after frame: building them costs more CPU than validating a sample, on a
    machine the worker shares (docs/benchmarks.md, Findings)."""

    def __init__(self, suite: dict[str, Any], *, docs_dir: Path | None = None) -> None:
        self.suite = suite
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GX warns about its own optional dependencies
            import great_expectations as gx
            from great_expectations.checkpoint.actions import UpdateDataDocsAction, ValidationAction
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            expectations = [
                ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta")).to_domain_obj()
                for e in suite["expectations"]
            ]
            gx_suite = context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=expectations))
            batch = (
                context.data_sources.add_pandas("jointuse")
                .add_dataframe_asset(suite["name"])
                .add_batch_definition_whole_dataframe("batch")
            )
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=suite["name"], data=batch, suite=gx_suite)
            )
            actions: list[ValidationAction] = []
            if docs_dir is not None:
                context.add_data_docs_site(
                    site_name="jointuse",
                    site_config={
                        "class_name": "SiteBuilder",
                        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    },
                )
                actions.append(UpdateDataDocsAction(name="data_docs"))
            self._checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=suite["name"],
                    validation_definitions=[definition],
                    actions=actions,
                    result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
                )
            )

    def run(self, frame: pd.DataFrame) -> SuiteResult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = self._checkpoint.run(batch_parameters={"dataframe": frame})
        return _result(self.suite, frame, outcome)


def validate(frame: pd.DataFrame, suite: dict[str, Any], *, docs_dir: Path | None = None) -> SuiteResult:
    """One suite run once on one frame (a validator made for it)."""
    return SuiteValidator(suite, docs_dir=docs_dir).run(frame)


def _result(suite: dict[str, Any], frame: pd.DataFrame, outcome: Any) -> SuiteResult:
    results = next(iter(outcome.run_results.values()))
    failures = []
    for result in results.results:
        if result.success:
            continue
        config = result.expectation_config
        if config is None:
            continue
        kwargs = config.kwargs
        column = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "<table>"
        failures.append(
            Failure(
                config.type,
                column,
                int(result.result.get("unexpected_count") or 0),
                round(float(result.result.get("unexpected_percent") or 0.0), 3),
                str((config.meta or {}).get("why", "")),
            )
        )
    return SuiteResult(
        suite["name"],
        bool(outcome.success),
        len(frame),
        int(results.statistics["evaluated_expectations"]),
        tuple(failures),
    )
