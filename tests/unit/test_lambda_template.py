"""template.yaml (AWS SAM): valid for cfn-lint, and in step with the handler and the settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from cfnlint.api import ManualArgs, lint, lint_file

from bot.config import Settings
from bot.lambda_handler import JOBS, scheduled_job

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, !GetAtt) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def _function() -> dict[str, Any]:
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    props: dict[str, Any] = template["Resources"]["IdeabotFunction"]["Properties"]
    return props


def test_cfn_lint_finds_nothing() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["eu-west-1", "us-east-1"]))
    assert [str(m) for m in matches] == []


def test_cfn_lint_does_check_the_function() -> None:
    # A control: the same template with a misspelt property must not pass.
    broken = TEMPLATE.read_text(encoding="utf-8").replace("MemorySize: !Ref", "MemorySise: !Ref")
    assert any(m.rule.id == "E3002" for m in lint(broken, regions=["eu-west-1"]))


def test_the_handler_and_the_schedules_match_the_code() -> None:
    fn = _function()
    assert fn["Handler"] == "bot.lambda_handler.handler"
    # Not python3.11: its Amazon Linux 2 (glibc 2.26) cannot load onnxruntime >= 1.17.
    assert fn["Runtime"] == "python3.12"
    jobs = set()
    for event in fn["Events"].values():
        assert event["Type"] == "ScheduleV2"
        jobs.add(scheduled_job(json.loads(event["Properties"]["Input"])))
    assert jobs == set(JOBS)


def test_every_variable_set_is_a_setting() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    assert set(_function()["Environment"]["Variables"]) <= settings


def test_the_function_may_invoke_itself_for_its_lazy_listeners() -> None:
    fn = _function()
    policies = [p for p in fn["Policies"] if isinstance(p, dict) and "LambdaInvokePolicy" in p]
    assert policies and policies[0]["LambdaInvokePolicy"]["FunctionName"] == fn["FunctionName"]
