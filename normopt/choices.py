"""The closed sets of words options take, defined once (no heavy imports: the CLI builds its Enums from these).

The modules that act on them import the Literal types from here (``fusion.emit``, ``modelio``,
``exporting.exporter``, ``run``), so a new choice is added in one place.
"""

from __future__ import annotations

from typing import Literal, get_args

Target = Literal["auto", "onnx", "ort"]
ExternalLayout = Literal["auto", "same", "new", "inline"]
Exporter = Literal["legacy", "dynamo"]
DType = Literal["fp32", "fp16", "bf16"]
Task = Literal["hidden-states", "causal-lm", "masked-lm", "sequence-classification"]
Scenario = Literal["prefill", "decode", "both"]
Part = Literal["encoder", "decoder"]

TARGETS: tuple[Target, ...] = get_args(Target)
EXTERNAL_LAYOUTS: tuple[ExternalLayout, ...] = get_args(ExternalLayout)
EXPORTERS: tuple[Exporter, ...] = get_args(Exporter)
DTYPES: tuple[DType, ...] = get_args(DType)
TASKS: tuple[Task, ...] = get_args(Task)
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)
PARTS: tuple[Part, ...] = get_args(Part)
