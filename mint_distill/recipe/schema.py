"""The whole recipe as one validated document."""

from __future__ import annotations

from pydantic import Field, field_validator

from .sections.base import Section, Seed
from .sections.data import DataSection
from .sections.evaluation import EvaluationSection
from .sections.filtering import FilterSection
from .sections.packaging import PackageSection
from .sections.students import StudentsSection
from .sections.teacher import TeacherSection


class Recipe(Section):
    name: str = Field(description="run name: outputs go to <run_dir>/<name>/")
    description: str = ""
    run_dir: str = "runs"
    reuse_stages: bool = Field(
        True, description="copy a finished stage with the same fingerprint from another run under run_dir"
    )
    seed: Seed = 13
    data: DataSection
    teacher: TeacherSection = TeacherSection()
    filter: FilterSection = FilterSection()
    students: StudentsSection = StudentsSection()
    evaluation: EvaluationSection = EvaluationSection()
    package: PackageSection = PackageSection()
    ablations: dict[str, list[str]] = Field(
        {},
        description="variant name -> KEY=VALUE overrides; `mint-distill ablate` runs each variant "
        "(bi-encoder only) and compares it with this run",
    )

    @field_validator("ablations")
    @classmethod
    def _not_the_full_run(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if "full" in value:
            raise ValueError("`full` names the recipe's own run in the ablation report; rename the variant")
        return value
