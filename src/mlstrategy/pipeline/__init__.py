"""Multi-stage pipelines: stages trained on intermediate labels, composed for inference, scored
as a whole and by parts (ceiling analysis), and compared with end-to-end learning."""

from mlstrategy.pipeline.ceiling import CeilingAnalysis, CeilingRow, ceiling_analysis
from mlstrategy.pipeline.localize import (
    LearnedLocalizer,
    Localizer,
    PositionNet,
    TemplateLocalizer,
    crop,
    crop_stage,
)
from mlstrategy.pipeline.pipeline import Pipeline, as_examples
from mlstrategy.pipeline.stages import FixedStage, ModelFactory, ModelStage, Stage
from mlstrategy.pipeline.study import EndToEndStudy, Study
from mlstrategy.pipeline.study_report import Crossover, find_crossover

__all__ = [
    "CeilingAnalysis",
    "CeilingRow",
    "Crossover",
    "EndToEndStudy",
    "FixedStage",
    "LearnedLocalizer",
    "Localizer",
    "ModelFactory",
    "ModelStage",
    "Pipeline",
    "PositionNet",
    "Stage",
    "Study",
    "TemplateLocalizer",
    "as_examples",
    "ceiling_analysis",
    "crop",
    "crop_stage",
    "find_crossover",
]
