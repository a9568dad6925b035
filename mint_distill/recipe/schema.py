"""The whole recipe as one validated document."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from .sections.base import ONE_WORD, Section, Seed
from .sections.data import DataSection
from .sections.evaluation import EvaluationSection
from .sections.filtering import FilterSection
from .sections.packaging import PackageSection
from .sections.students import StudentsSection
from .sections.teacher import TeacherSection


class Recipe(Section):
    name: str = Field(pattern=ONE_WORD, description="run name, one word: outputs go to <run_dir>/<name>/")
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
    def _variant_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if "full" in value:
            raise ValueError("`full` names the recipe's own run in the ablation report; rename the variant")
        if "zero-shot" in value:
            raise ValueError("`zero-shot` names the untrained encoder in the ablation report; rename the variant")
        for name in value:
            if not re.match(ONE_WORD, name):
                raise ValueError(f"variant `{name}` must be one word (letters, digits, `_.+-`): it names a run folder")
        return value

    @model_validator(mode="after")
    def _students_it_relies_on_are_trained(self) -> Recipe:
        """A student named as `evaluation.reference`, or packaged, is one the run (and every
        ablation run, for the reference) trains."""
        reference = self.evaluation.reference
        students = {"biencoder-mint": self.students.biencoder, "crossencoder-mint": self.students.crossencoder}
        if reference in students and not students[reference].enabled:
            role = reference.split("-")[0]
            raise ValueError(
                f"evaluation.reference `{reference}` is not trained: students.{role}.enabled is false"
            )
        if self.package.enabled and not self.students.biencoder.enabled:
            raise ValueError(
                "package.enabled is true but students.biencoder.enabled is false: a bundle holds the "
                "trained bi-encoder"
            )
        if reference == "crossencoder-mint" and self.ablations:
            raise ValueError(
                "evaluation.reference `crossencoder-mint`: the ablation runs train no cross-encoder; "
                "choose another reference or remove the ablations"
            )
        return self
